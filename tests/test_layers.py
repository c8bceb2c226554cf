"""The layer rule: data flows one way, and imports follow it (docs/architecture.md).

    rag.{settings, types, records, text, files, errors, streams, lazy}  shared records
      ← rag.dates, rag.local_model                           no RAG in the runtime
      ← rag.store                                            (may read dates)
      ← rag.answer
      ← ingest
      ← web, eval
      ← app.py and the command lines (rag/cli.py, rag/__main__.py, ingest/cli.py, ...)

A module may import its own layer and those below it, never one above. Imports inside
functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# lowest first; a module's layer is that of the longest prefix it starts with
LAYERS: list[tuple[str, ...]] = [
    ("rag.settings", "rag.types", "rag.records", "rag.text", "rag.files", "rag.errors", "rag.lazy",
     "rag.streams"),
    ("rag.dates", "rag.local_model"),
    ("rag.store",),
    ("rag.answer",),
    ("ingest",),
    ("web", "eval"),
    ("app", "rag.cli", "rag.__main__", "ingest.cli", "ingest.__main__", "eval.cli",
     "eval.__main__"),
]
# rag.local_model knows nothing of RAG: only the settings that say where the model is
RUNTIME_MAY_IMPORT = ("rag.settings", "rag.local_model", "rag.lazy", "rag.errors")


def layer_of(module: str) -> int:
    best, found = -1, -1
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), level
    return found


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    where = ROOT.joinpath(*name.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def project_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # `from rag import dates`: the module imported is rag.dates
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                      if is_module(f"{node.module}.{a.name}")]
    return [(line, name) for line, name in found
            if name.split(".")[0] in ("rag", "ingest", "web", "eval", "app")]


SOURCES = sorted([*ROOT.glob("rag/**/*.py"), *ROOT.glob("ingest/**/*.py"),
                  *ROOT.glob("web/**/*.py"), *ROOT.glob("eval/**/*.py"), ROOT / "app.py"])


def test_every_module_has_a_layer() -> None:
    assert [module_name(p) for p in SOURCES
            if module_name(p) != "rag" and layer_of(module_name(p)) < 0] == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_go_down_the_layers_only(path: Path) -> None:
    me = module_name(path)
    mine = layer_of(me)
    wrong = [f"{me}:{line} imports {name}" for line, name in project_imports(path)
             if name != "rag" and layer_of(name) > mine]
    if me.startswith("rag.local_model"):
        wrong += [f"{me}:{line} imports {name} (the runtime knows nothing of RAG)"
                  for line, name in project_imports(path)
                  if not name.startswith(RUNTIME_MAY_IMPORT)]
    assert wrong == []


def test_the_rule_catches_an_import_going_up(tmp_path: Path) -> None:
    """The check itself: a store module reaching for the answer pipeline is caught."""
    fake = tmp_path / "bad.py"
    fake.write_text("def f():\n    from rag.answer import engine\n")
    names = project_imports(fake)
    assert names == [(2, "rag.answer"), (2, "rag.answer.engine")]
    assert layer_of("rag.answer.engine") > layer_of("rag.store.keyword")
    assert layer_of("web.tokens") > layer_of("ingest.pipeline") > layer_of("rag.answer.engine")


PACKAGES = ["rag.dates", "rag.store", "rag.local_model", "rag.answer", "rag.answer.readers"]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_exports_its_public_names(package: str) -> None:
    import importlib

    module = importlib.import_module(package)
    assert module.__all__
    for name in module.__all__:  # each resolves, to what its own module defines
        got = getattr(module, name)
        assert getattr(got, "__module__", "").startswith("rag."), name

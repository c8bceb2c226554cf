"""One error tree (rag/errors.py): every error we raise on purpose is a `RagError`, the
web shows only those, and the command lines share one way from an error to an exit."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from rag.errors import RagError, StoreError, UsageError, exit_code

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rag", "ingest", "web", "eval")


def exception_classes() -> list[tuple[str, str]]:
    """(module, class) of every public class in the project whose name says it is an
    error (…Error, …Passed, …Unavailable, …Filter, NotEditor)."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and \
                        node.bases and node.name.endswith(
                            ("Error", "Passed", "Unavailable", "UnknownFilter", "NotEditor")):
                    found.append((module, node.name))
    return found


def test_every_error_we_raise_is_one_a_user_can_act_on() -> None:
    import importlib

    classes = exception_classes()
    assert len(classes) >= 18, classes  # the scan finds them
    outside = [f"{m}.{c}" for m, c in classes
               if not issubclass(getattr(importlib.import_module(m), c), RagError)]
    assert not outside, f"not a RagError: {outside}"


def test_old_builtin_bases_still_catch() -> None:
    from rag.answer.draft.llm import LLMError
    from rag.settings import SettingsError
    from rag.store.lock import WriterBusyError

    assert issubclass(SettingsError, ValueError) and issubclass(SettingsError, UsageError)
    assert issubclass(WriterBusyError, StoreError) and issubclass(WriterBusyError, RuntimeError)
    assert issubclass(LLMError, RuntimeError)


def test_exit_code_turns_our_errors_into_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def bad() -> int:
        raise UsageError("the question is empty")

    assert exit_code(bad) == 1
    assert capsys.readouterr().err == "error: the question is empty\n"

    def missing() -> int:
        raise FileNotFoundError(2, "No such file or directory", "history.json")

    assert exit_code(missing) == 1
    assert "history.json" in capsys.readouterr().err

    def interrupted() -> int:
        raise KeyboardInterrupt

    assert exit_code(interrupted, interrupted="stopped; run it again") == 130
    assert capsys.readouterr().err == "stopped; run it again\n"
    assert exit_code(lambda: 0) == 0


def test_exit_code_lets_a_bug_through_unless_translated(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    def bug() -> int:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        exit_code(bug)
    assert exit_code(bug, translate=lambda exc: "the store is away") == 1
    assert capsys.readouterr().err == "error: the store is away\n"


def test_the_web_shows_our_lines_and_hides_other_errors(tmp_path: Path) -> None:
    """A library's ValueError may hold anything (a path, a key): only a RagError's line
    reaches a web user."""
    from rag.settings import Settings
    from web.service import UNEXPECTED, NewsApp

    app = NewsApp.__new__(NewsApp)  # error_line reads only the settings
    app.settings = Settings(data_dir=tmp_path)
    assert app.error_line(UsageError(f"bad file {tmp_path}/x"), "testing") == \
        "bad file <data folder>/x"
    assert app.error_line(ValueError("internal detail"), "testing") == UNEXPECTED


def test_the_web_service_does_not_need_gradio() -> None:
    """NewsApp serves the page, /v1 and MCP: only the page's modules import gradio."""
    code = ("import sys, web.service, web.openai.api, web.mcp; "
            "print('gradio' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"


def test_an_empty_library_is_decided_once_and_each_surface_says_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The engine decides (`EmptyLibrary`); the CLI shows it as an error line, the web
    as the answer that says how to add articles."""
    from rag.answer import Ask, Engine
    from rag.answer.engine import EmptyLibrary
    from rag.cli import main
    from rag.settings import Settings
    from web.service import EMPTY_LIBRARY, NewsApp

    settings = Settings(data_dir=tmp_path / "data", collection="empty")
    engine = Engine.from_settings(settings)
    with pytest.raises(EmptyLibrary, match="has no articles yet"):
        engine.ask(Ask("why did relations sour?"))

    code = main(["ask", "why did relations sour?", "--data-dir", str(tmp_path / "data"),
                 "--collection", "empty"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: the collection 'empty'") and \
        "has no articles yet" in err

    app = NewsApp(settings, engine=engine)
    answer = app.answer(Ask("why did relations sour?")).result
    assert answer.refused and answer.answer == EMPTY_LIBRARY and app.is_empty_answer(answer)

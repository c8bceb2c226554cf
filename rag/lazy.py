"""A package's public names, re-exported from its modules lazily (PEP 562).

    __all__, __getattr__ = lazy_exports(__name__, {"ArticleStore": "rag.store.articles"})

Lazily, not with eager imports in `__init__` (as httpx does): an eager import would load
the package's modules before `python -m` runs one of them (runpy warns, and the Makefile
runs three), and would load a whole package for a caller that needs one module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]
                 ) -> tuple[list[str], Callable[[str], Any]]:
    """(`__all__`, `__getattr__`) for `package`: each name of `exports` is read from its
    module, imported on first use; any other name is an AttributeError (so `from package
    import submodule` still imports the submodule)."""
    def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the name is
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    return sorted(exports), __getattr__

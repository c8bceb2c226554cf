"""The answer pipeline: question in, checked answer out (`engine.Engine`), one module per
step the engine names: `condense` (a follow-up made standalone), `retrieve` (dense and
BM25 fused, filtered), `settle` (copies and versions of one story), `clarify` (a
question naming no subject gets "which story?"), `timeline`, `draft` (the answerer
chain: an LLM, the local model, the extractive picker), `readers` (which sentences
state the answer), `verify` (claims against their passages, citations numbered).

Contract: every answer's claims cite passages the store holds, with spans; a claim the
passages do not support is flagged or dropped, never shown as supported.
"""

from __future__ import annotations

import importlib
from typing import Any

# Re-exported lazily (PEP 562): an eager import here would load the package's
# modules before `python -m` runs one of them (runpy warns, and the Makefile runs
# some), and would load them all for a caller that needs one.
_EXPORTS = {
    "AnswerStream": "rag.answer.engine",
    "Engine": "rag.answer.engine",
    "Filters": "rag.answer.retrieve",
    "Retriever": "rag.answer.retrieve",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the name is
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

"""Readers: which measured candidate sentences state the answer, best first, or none to
refuse (`base.Reader`). The heuristic reader is the picker's own
(`rag.answer.draft.extractive.HeuristicReader`); the LLM reader (`llm`) has the local
model read a learned shortlist and a learned decision choose (`learned`,
`reader_model.json`, fitted by `python -m eval.fit_reader`)."""

from __future__ import annotations

import importlib
from typing import Any

# Re-exported lazily (PEP 562): an eager import here would load the package's
# modules before `python -m` runs one of them (runpy warns, and the Makefile runs
# some), and would load them all for a caller that needs one.
_EXPORTS = {
    "Candidate": "rag.answer.readers.base",
    "Pick": "rag.answer.readers.base",
    "Question": "rag.answer.readers.base",
    "Reader": "rag.answer.readers.base",
    "Reading": "rag.answer.readers.base",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the name is
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

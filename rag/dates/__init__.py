"""Dates: reading them in news text and questions (`parse`), and what a question asks of
time (`plan`: a date window to search in, the latest news, a timeline, the day "now" is).

Knows nothing of the store or the answer pipeline; both read dates through it.
"""

from __future__ import annotations

import importlib
from typing import Any

# Re-exported lazily (PEP 562): an eager import here would load the package's
# modules before `python -m` runs one of them (runpy warns, and the Makefile runs
# some), and would load them all for a caller that needs one.
_EXPORTS = {
    "DateFilter": "rag.dates.parse",
    "TimePlan": "rag.dates.plan",
    "anchor_day": "rag.dates.plan",
    "format_day": "rag.dates.parse",
    "format_range": "rag.dates.parse",
    "question_dates": "rag.dates.parse",
    "resolve_dates": "rag.dates.parse",
    "strip_dates": "rag.dates.parse",
    "without_dates": "rag.dates.plan",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the name is
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

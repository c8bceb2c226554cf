"""Dates: reading them in news text and questions (`parse`), and what a question asks of
time (`plan`: a date window to search in, the latest news, a timeline, the day "now" is).

Knows nothing of the store or the answer pipeline; both read dates through it.
"""

from rag.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "DateFilter": "rag.dates.parse",
    "TimePlan": "rag.dates.plan",
    "anchor_day": "rag.dates.plan",
    "format_day": "rag.dates.parse",
    "format_range": "rag.dates.parse",
    "question_dates": "rag.dates.parse",
    "resolve_dates": "rag.dates.parse",
    "strip_dates": "rag.dates.parse",
    "without_dates": "rag.dates.plan",
})

"""Dates: reading them in news text and questions (`parse`), and what a question asks of
time (`plan`: a date window to search in, the latest news, a timeline, the day "now" is).

Knows nothing of the store or the answer pipeline; both read dates through it.
"""

from rag.dates.parse import (
    DateFilter,
    format_day,
    format_range,
    question_dates,
    resolve_dates,
    strip_dates,
)
from rag.dates.plan import TimePlan, anchor_day, without_dates

__all__ = ["DateFilter", "TimePlan", "anchor_day", "format_day", "format_range",
           "question_dates", "resolve_dates", "strip_dates", "without_dates"]

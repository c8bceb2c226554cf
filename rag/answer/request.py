"""What a question put to the engine is: `Ask`, the one argument of `Engine.ask` and
`Engine.stream`.

    engine.ask(Ask("why did relations sour?", history=[...], mode="extractive"))

Contract: a request is plain data, checked by the engine when the answer is computed
(an empty question or an unknown mode is a `UsageError` then, not here), so building
one never fails and the front ends (CLI flags, HTTP fields, eval records) map their
own names onto these fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from rag.answer.retrieve import Filters
from rag.types import AnswerMode, RetrievalMode


@dataclass(frozen=True)
class Ask:
    """One question and everything that shapes its answer.

    `history`: the conversation's earlier turns (`{"role", "content"}`), for a
    follow-up; `filters`: what the search may see; `mode` / `retrieval` / `top_k`:
    the settings' when None; `as_of`: answer as if today were that day;
    `dates_narrow`: let dates in the question narrow the search to their window (the
    window then shows in the answer as `Answer.date_filter`; the CLI's
    `--no-date-filter` and the HTTP `date_filter` field turn it off); `checked`: the
    text goes out only as the answer will stand (`Engine.stream`).
    """

    question: str
    history: list[dict[str, Any]] | None = None
    filters: Filters | None = None
    mode: AnswerMode | str | None = None
    top_k: int | None = None
    retrieval: RetrievalMode | str | None = None
    as_of: date | None = None
    dates_narrow: bool = True
    checked: bool = False

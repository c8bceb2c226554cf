"""Putting the `Answer` together from what the engine's steps found: the checked draft
with its citations numbered (`assemble`), a question back (`ask_back`), and each
citation's event day, its story's other tellings and the date window applied (`dated`);
with the small readings of dates those need (`applied_filter`, `event_day`,
`by_recency`).

Contract: citation numbers are assigned here, once, in order of first use
(`rag.answer.verify.number_citations`); nothing here retrieves or calls a model.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from rag.answer.settle import Settled
from rag.answer.verify import number_citations
from rag.dates.parse import format_day, format_range, resolve_dates
from rag.dates.plan import TimePlan
from rag.types import (
    REFUSAL,
    Answer,
    AnswerMode,
    AppliedFilter,
    Checked,
    Choice,
    Draft,
    Passage,
    Retrieved,
    answer_text,
)


def assemble(question: str, standalone: str, draft: Draft, checked: list[Checked],
             passages: list[Passage], mode: AnswerMode, model: str | None,
             notices: list[str]) -> Answer:
    """The answer: citations numbered once, in order of first use."""
    sentences, citations = number_citations(checked, passages)
    return Answer(
        question=question, standalone_question=standalone,
        answer=REFUSAL if draft.refused else answer_text(sentences), refused=draft.refused,
        mode=mode, model=model, citations=citations, sentences=sentences,
        retrieved=[_retrieved(p) for p in passages],
        notice="; ".join(x for x in notices if x),
    )


def ask_back(question: str, standalone: str, choices: list[Choice], passages: list[Passage],
             mode: AnswerMode) -> Answer:
    """The answer that is a question: which of these stories is meant?"""
    listed = " · ".join(f"{c.title} ({c.published})" if c.published else c.title
                        for c in choices)
    return Answer(question=question, standalone_question=standalone, mode=mode,
                  answer=f"Which story do you mean? The articles cover: {listed}",
                  clarify=choices, retrieved=[_retrieved(p) for p in passages])


class Composed(NamedTuple):
    """An answer as a step composed it, and what `dated` finishes it with: the passages
    it was answered from, their settled stories, the date window applied (if any)."""

    answer: Answer
    passages: list[Passage]
    settled: Settled
    applied: AppliedFilter | None


def dated(answer: Answer, passages: list[Passage], settled: Settled,
          applied: AppliedFilter | None) -> Answer:
    """The answer with each citation's event day and story copies, and the date window
    applied to the search (`Answer.date_filter`)."""
    stories = {p.article_id: p.story for p in passages}
    citations = []
    for c in answer.citations:
        iso, shown = event_day(c.quote, c.published)
        citations.append(c.model_copy(update={
            "event_date": iso, "event_text": shown, "story": stories.get(c.article_id),
            "also_in": settled.others.get(c.article_id, [])}))
    return answer.model_copy(update={"citations": citations, "date_filter": applied})


def applied_filter(when: TimePlan) -> AppliedFilter:
    """The question's date window as the answer shows it (it must have one)."""
    window = when.window
    assert window is not None
    return AppliedFilter(
        first=window.first.isoformat() if window.first else None,
        last=window.last.isoformat() if window.last else None,
        phrase=window.phrase, text=window.describe(), anchor=when.anchor.isoformat(),
        anchor_note=when.anchor_note)


def by_recency(passages: list[Passage], relevant: float = 0.8) -> list[Passage]:
    """For "the latest on X": among passages nearly as relevant as the best, the newest
    first; the rest after, by relevance."""
    if not passages:
        return passages
    best = max(p.score for p in passages)
    close = [p for p in passages if p.score >= relevant * best]
    rest = [p for p in passages if p.score < relevant * best]
    close.sort(key=lambda p: (p.published or "", p.score), reverse=True)
    return close + rest


def event_day(quote: str, published: str | None) -> tuple[str | None, str | None]:
    """The day a quoted sentence speaks of (ISO, shown), read against its publication."""
    day = date.fromisoformat(published) if published else None
    mentions = resolve_dates(quote, day)
    for m in mentions:
        if m.first == m.last:
            return m.first.isoformat(), format_day(m.first)
    if mentions:
        return None, format_range(mentions[0].first, mentions[0].last)
    return None, None


def _retrieved(p: Passage) -> Retrieved:
    return Retrieved(chunk_id=p.chunk_id, article_id=p.article_id, path=p.path, url=p.url,
                     title=p.title, score=round(p.score, 4), start=p.start, end=p.end)

"""What a question asks of time: a date range to search in, the latest news, a timeline.

A question's "in March" or "last week" becomes a filter on the days passages speak of
(`Filters.when_*`), read against today, the `--as-of` day, or, when the library stops
well before today (an archive), its newest article: "last week" of a 2005 archive asked
in 2026 would match nothing. The answer says which day it read them against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date

from rag.dates.parse import DateFilter, format_day, question_dates, strip_dates

# How far the newest article may lie behind today before the library counts as an
# archive whose own "now" is its newest article.
ARCHIVE_AFTER_DAYS = 180

_TIMELINE = re.compile(
    r"\b(?:time\s?line|chronolog\w*|sequence of events|step by step|history of"
    r"|how (?:did|has|have|do|does) .{2,80}?\b(?:develop|unfold|evolve|progress|change"
    r"|escalate|play out|come about)\w*"
    r"|what (?:has |have )?(?:happened|changed) (?:so far|over time|since|after|between)"
    r"|what (?:has |have )?changed)\b", re.I)
_LATEST = re.compile(
    r"\b(?:latest|most recent|newest|recent developments?|what'?s new"
    r"|current (?:state|situation|status)|right now|as things stand|where do things stand"
    r"|up to date|any news)\b", re.I)
_OLDER = re.compile(
    r"\b(?:originally|initially|at first|first report(?:ed|s)?|first version"
    r"|earlier (?:version|report)|before (?:the|it was) (?:update|correct|revis)\w*)\b", re.I)


@dataclass(frozen=True)
class TimePlan:
    query: str  # the question as retrieval should read it (without its date phrase)
    window: DateFilter | None  # the dates it asks about, if any
    anchor: date  # the day relative dates were read against
    anchor_note: str  # and how that day was chosen, for the answer
    intent: str | None  # "timeline", "latest" or None
    wants_older: bool  # asks about an earlier version: don't let updates replace it
    as_of: date | None = None  # answer as if today were this day


def anchor_day(as_of: date | None, newest: date | None, today: date | None = None
               ) -> tuple[date, str]:
    """The day that is "now" for a question, and the words that say so."""
    if as_of is not None:
        return as_of, f"as of {format_day(as_of)}"
    today = today or date.today()
    if newest is not None and (today - newest).days > ARCHIVE_AFTER_DAYS:
        return newest, (f"relative to the newest article ({format_day(newest)}), as the "
                        "library ends there")
    return today, f"today ({format_day(today)})"


_CHANGE = re.compile(r"\bwhat (?:has |have )?changed\b|\bhow (?:has|have) .{2,60}? changed\b",
                     re.I)


def asks_change(question: str) -> bool:
    """"What changed since March?": the answer shows how things stood before, too."""
    return bool(_CHANGE.search(question))


def without_latest(question: str) -> str:
    """The question without its "latest" words: they ask for recency, which retrieval
    has handled, and no sentence of an answer contains them."""
    return " ".join(_LATEST.sub(" ", question).split())


def without_dates(question: str, window: DateFilter) -> str:
    """The question without the date phrase its filter came from ("in 2024", "last
    week"): the filter has applied those words, so an answer's sentence need not hold
    them; a passage of 2024 seldom says "2024". A question the phrase is not found in
    (a rewrite that dropped it) is returned as it is."""
    at = question.lower().find(window.phrase.lower())
    if at < 0:
        return question
    at_phrase = replace(window, start=at, end=at + len(window.phrase))
    return strip_dates(question, at_phrase) or question


def intent(question: str) -> str | None:
    if _TIMELINE.search(question):
        return "timeline"
    if _LATEST.search(question):
        return "latest"
    return None


def plan(question: str, as_of: date | None = None, newest: date | None = None,
         today: date | None = None) -> TimePlan:
    anchor, note = anchor_day(as_of, newest, today)
    window = question_dates(question, anchor)
    query = strip_dates(question, window) if window else question
    return TimePlan(query=query or question, window=window, anchor=anchor, anchor_note=note,
                    intent=intent(question), wants_older=bool(_OLDER.search(question)),
                    as_of=as_of)

"""Metrics of dated questions, pure functions over an answer's JSON (`Answer.to_json()`).

A dated answer carries the date filter it applied (`date_filter`), a `timeline` for "how
did it develop" questions and, per citation, the `event_date` of the cited sentence.
Each metric is scored only over the items that have the field it checks:

- filter_accuracy (items with a `filter` key, null included): the applied filter is the
  expected range (both none, or the same first and last day; a null bound is open).
- date_accuracy (items with `date`): a citation of the answer's first two sentences has
  that `event_date`, or the answer writes the day ("28 Apr 2025", "28 April 2025",
  "April 28" or "2025-04-28").
- latest_accuracy (`latest` items): the first citation is the gold article (its URL, or
  an article resolved as gold: the same story under the same headline).
- timeline_recall (items with `timeline`): share of expected events some timeline entry
  matches. An entry matches an event when their sentences overlap heavily (token Jaccard
  >= 0.6, or one contains the other), or when it has the event's date and cites its source.
  Each entry matches one event at most; sentence matches are taken before date ones.
- timeline_precision: share of the answer's timeline entries that match an expected event
  (entries beyond the expected ones are not all wrong, but a long list dilutes).
- timeline_order: share of pairs of matched events that the answer's timeline puts in the
  expected order (1.0 when fewer than two matched).
- timeline_date_accuracy: share of matched entries dated the event's day.
- topic_year_no_filter (`topic_year` items): no date filter applied ("the 2023 inquiry"
  names a topic, not a range to filter on).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Any

from eval.metrics import normalize_answer
from eval.qa import QAItem, url_key

JACCARD_MIN = 0.6
METRICS = ("filter_accuracy", "date_accuracy", "latest_accuracy", "timeline_recall",
           "timeline_precision", "timeline_order", "timeline_date_accuracy", "topic_year_no_filter")


def filter_matches(expected: dict[str, str | None] | None,
                   applied: dict[str, Any] | None) -> bool:
    """Expected `{"start", "end"}` against the answer's `{"first", "last", ...}`."""
    want = (expected.get("start"), expected.get("end")) if expected else (None, None)
    got = (applied.get("first"), applied.get("last")) if applied else (None, None)
    return want == got


def date_spellings(day: dt.date) -> list[str]:
    """How an answer may write `day`: the forms date_accuracy accepts."""
    month, abbr = calendar.month_name[day.month], calendar.month_abbr[day.month]
    return [day.isoformat(), f"{day.day} {abbr} {day.year}", f"{day.day} {month} {day.year}",
            f"{month} {day.day}"]


def mentions_date(text: str, day: dt.date) -> bool:
    return any(re.search(rf"(?<![\w-]){re.escape(form)}(?![\w-])", text, re.IGNORECASE)
               for form in date_spellings(day))


def _citations_by_n(result: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {c["n"]: c for c in result.get("citations") or [] if "n" in c}


def date_correct(result: dict[str, Any], expected: str) -> bool:
    """The day is the event date of a citation behind the first two sentences, or written
    in the answer's text."""
    cited = _citations_by_n(result)
    for sentence in (result.get("sentences") or [])[:2]:
        for n in sentence.get("citations") or []:
            if n in cited and cited[n].get("event_date") == expected:
                return True
    return mentions_date(result.get("answer") or "", dt.date.fromisoformat(expected))


def is_source(citation: dict[str, Any], source_urls: Iterable[str],
              article_ids: Iterable[str] = ()) -> bool:
    """A citation of the gold article: its URL (compared as `url_key`) or its id."""
    url = citation.get("url")
    return ((bool(url) and url_key(url) in {url_key(u) for u in source_urls})
            or citation.get("article_id") in set(article_ids))


def latest_correct(result: dict[str, Any], source: str,
                   article_ids: Iterable[str] = ()) -> bool:
    """The first citation (lowest `n`) is the latest article."""
    citations = sorted(result.get("citations") or [], key=lambda c: c.get("n", 0))
    return bool(citations) and is_source(citations[0], [source], article_ids)


def _tokens(text: str) -> set[str]:
    return set(normalize_answer(text).split())


def sentences_match(a: str, b: str) -> bool:
    """Heavy overlap: token Jaccard >= 0.6, or one normalised sentence inside the other."""
    na, nb = normalize_answer(a), normalize_answer(b)
    if not na or not nb:
        return False
    if na in nb or nb in na:
        return True
    ta, tb = set(na.split()), set(nb.split())
    return len(ta & tb) / len(ta | tb) >= JACCARD_MIN


def match_timeline(expected: Sequence[dict[str, str]], entries: Sequence[dict[str, Any]],
                   citations: dict[int, dict[str, Any]]) -> dict[int, int]:
    """Expected event index -> the index of the entry that matches it, one to one."""
    matched: dict[int, int] = {}
    used: set[int] = set()

    def by_text(event: dict[str, str], entry: dict[str, Any]) -> bool:
        return sentences_match(event["evidence"], entry.get("sentence") or "")

    def by_date(event: dict[str, str], entry: dict[str, Any]) -> bool:
        n = entry.get("citation")
        cited = citations.get(n, {}) if isinstance(n, int) else {}
        return entry.get("date") == event["date"] and is_source(cited, [event["source"]])

    for rule in (by_text, by_date):
        for i, event in enumerate(expected):
            if i in matched:
                continue
            j = next((j for j, entry in enumerate(entries)
                      if j not in used and rule(event, entry)), None)
            if j is not None:
                matched[i] = j
                used.add(j)
    return matched


def timeline_scores(expected: Sequence[dict[str, str]], result: dict[str, Any]
                    ) -> dict[str, float]:
    """timeline_recall, _precision, _order and (when any matched) _date_accuracy."""
    entries = result.get("timeline") or []
    matched = match_timeline(expected, entries, _citations_by_n(result))
    pairs = list(combinations(sorted(matched), 2))  # expected order: i before k
    agree = sum(1 for i, k in pairs if matched[i] < matched[k])
    out = {"timeline_recall": len(matched) / len(expected),
           "timeline_precision": len(matched) / len(entries) if entries else 0.0,
           "timeline_order": agree / len(pairs) if pairs else 1.0}
    if matched:
        out["timeline_date_accuracy"] = sum(
            1 for i, j in matched.items() if entries[j].get("date") == expected[i]["date"]
        ) / len(matched)
    return out


def score(item: QAItem, result: dict[str, Any],
          gold_ids: Iterable[str] = ()) -> dict[str, float]:
    """The dated metrics that apply to `item`. A metric whose answer field is missing
    (an engine without dated answers) is left out, not scored as wrong: `missing_fields`
    says which were."""
    out: dict[str, float] = {}
    has_filter = "date_filter" in result
    if item.has_filter and has_filter:
        out["filter_accuracy"] = float(filter_matches(item.filter, result["date_filter"]))
    if item.type == "topic_year" and has_filter:
        out["topic_year_no_filter"] = float(result["date_filter"] is None)
    if item.date:
        out["date_accuracy"] = float(date_correct(result, item.date))
    if item.type == "latest" and item.source:
        out["latest_accuracy"] = float(latest_correct(result, item.source, gold_ids))
    if item.timeline and "timeline" in result:
        out.update(timeline_scores(item.timeline, result))
    return out


def missing_fields(item: QAItem, result: dict[str, Any]) -> list[str]:
    """The answer fields a dated item's metrics need that the answer lacks."""
    needed = []
    if item.has_filter or item.type == "topic_year":
        needed.append("date_filter")
    if item.timeline:
        needed.append("timeline")
    return [name for name in needed if name not in result]

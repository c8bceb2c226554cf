"""Dated question sets: the loader's checks, URL gold sources and the dated metrics, on
hand-made answer JSON (no engine, no store)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eval import temporal as t
from eval.qa import DatasetError, QAItem, load, select_split, url_key
from eval.runner import accepts_as_of
from eval.scoring import Gold, aggregate, score_record

DATED = Path(__file__).resolve().parents[2] / "eval" / "datasets" / "dated_qa.jsonl"
SRC = "https://coastlinewire.vl/news/2025/01/14/dock-vote"
OTHER = "https://vellandherald.vl/news/2025/01/21/walkout"


def _result(**kw: Any) -> dict[str, Any]:
    base = {"answer": "", "refused": False, "retrieved": [], "citations": [], "sentences": [],
            "timings_ms": {}, "date_filter": None, "timeline": []}
    return {**base, **kw}


def _cite(n: int, url: str | None = SRC, event_date: str | None = None,
          article_id: str = "x") -> dict[str, Any]:
    return {"n": n, "url": url, "article_id": article_id, "quote": "", "title": "",
            "published": None, "event_date": event_date, "story": None, "also_in": []}


def _filter(first: str | None, last: str | None) -> dict[str, Any]:
    return {"first": first, "last": last, "phrase": "in March", "text": "March 2025",
            "anchor": "2025-06-30", "anchor_note": "asked on"}


# -- loader ---------------------------------------------------------------------------

def _write(tmp_path: Path, **fields: Any) -> Path:
    row = {"id": "d1", "question": "When?", "answers": [], "source": SRC, "evidence": "e",
           "type": "temporal", "as_of": "2025-06-30", "date": "2025-01-13", "filter": None,
           "timeline": None, "split": "dev", **fields}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(row) + "\n")
    return path


def test_dated_fields_load_and_round_trip(tmp_path: Path) -> None:
    item = load(_write(tmp_path))[0]
    assert item.as_of_date == dt.date(2025, 6, 30) and item.has_filter and item.filter is None
    assert item.to_json()["filter"] is None and "timeline" not in item.to_json()
    plain = {"id": "p", "question": "q?", "answers": ["a"], "keywords": [], "source": "a.txt",
             "evidence": "e", "type": "factoid"}
    (tmp_path / "p.jsonl").write_text(json.dumps(plain) + "\n")
    old = load(tmp_path / "p.jsonl")[0]
    assert not old.has_filter and old.to_json() == plain  # older sets unchanged


@pytest.mark.parametrize(("fields", "message"), [
    ({"date": "2025-13-01"}, "date must be an ISO date"),
    ({"as_of": "30/06/2025"}, "as_of must be an ISO date"),
    ({"date": 20250113}, "date must be an ISO date"),
    ({"filter": {"start": "2025-03-01"}}, "filter must be null or"),
    ({"filter": {"start": "2025-03-01", "end": "March"}}, "filter.end must be an ISO date"),
    ({"filter": {"start": None, "end": None}}, "filter needs a start or an end"),
    ({"filter": {"start": "2025-04-01", "end": "2025-03-01"}}, "starts after it ends"),
    ({"filter": ["2025-03-01"]}, "filter must be null or"),
    ({"type": "timeline", "timeline": []}, "timeline must be null or a non-empty list"),
    ({"timeline": [{"date": "2025-01-13", "evidence": "e"}]}, r"timeline\[0\] must be"),
    ({"timeline": [{"date": "Jan 13", "evidence": "e", "source": SRC}]},
     r"timeline\[0\].date must be an ISO date"),
    ({"timeline": [{"date": "2025-02-01", "evidence": "e", "source": SRC},
                   {"date": "2025-01-01", "evidence": "f", "source": SRC}]}, "date order"),
    ({"type": "timeline"}, "a timeline question needs a timeline"),
    ({"split": "train"}, "split must be one of dev, test"),
])
def test_loader_rejects_bad_dated_fields(tmp_path: Path, fields: dict[str, Any],
                                         message: str) -> None:
    with pytest.raises(DatasetError, match=rf"d\.jsonl:1: .*{message}"):
        load(_write(tmp_path, **fields))


def test_dated_set_loads_with_both_splits() -> None:
    items = load(DATED)
    assert len(items) >= 40
    dev, test = select_split(items, "dev"), select_split(items, "test")
    assert dev and test and len(dev) + len(test) == len(items)
    assert {"temporal", "latest", "timeline", "topic_year"} <= {i.type for i in items}
    assert all(i.answerable for i in items if i.type == "timeline")  # gold: its events


def test_select_split_needs_a_split_field() -> None:
    with pytest.raises(DatasetError, match="no split field"):
        select_split([QAItem(id="a", question="q?")], "dev")


# -- URL sources ------------------------------------------------------------------------

def test_url_key_ignores_scheme_and_trailing_slash() -> None:
    assert url_key("https://Example.vl/a/b/") == url_key("http://example.vl/a/b")
    assert url_key("https://example.vl/a/b#top") == url_key("https://example.vl/a/b")
    assert url_key("https://example.vl/a/b") != url_key("https://example.vl/a/c")


def test_citation_precision_accepts_the_source_url() -> None:
    item = QAItem(id="q", question="?", answers=["Monday"], source=SRC, evidence="zzz")
    gold = Gold({"A"}, {}, 1, urls={url_key(SRC)})
    cites = [_cite(1, url="http://coastlinewire.vl/news/2025/01/14/dock-vote/", article_id="?"),
             _cite(2, url=OTHER, article_id="B"), _cite(3, url=None, article_id="A")]
    assert score_record(item, _result(citations=cites), gold)["citation_precision"] == 2 / 3


# -- dated metrics ------------------------------------------------------------------------

def test_filter_accuracy() -> None:
    march = {"start": "2025-03-01", "end": "2025-03-31"}
    assert t.filter_matches(None, None)
    assert t.filter_matches(march, _filter("2025-03-01", "2025-03-31"))
    assert not t.filter_matches(march, None) and not t.filter_matches(None, _filter("a", "b"))
    assert not t.filter_matches(march, _filter("2025-03-01", None))
    assert t.filter_matches({"start": "2025-04-01", "end": None}, _filter("2025-04-01", None))
    item = QAItem(id="q", question="?", filter=march, type="unanswerable")
    assert item.has_filter
    got = score_record(item, _result(refused=True, date_filter=_filter("2025-03-01", None)),
                       None)
    assert got["filter_accuracy"] == 0.0 and got["refusal_rate"] == 1.0
    unfiltered = QAItem(id="n", question="?", has_filter=True, type="unanswerable")
    assert score_record(unfiltered, _result(), None)["filter_accuracy"] == 1.0
    assert "filter_accuracy" not in score_record(QAItem(id="o", question="?"), _result(), None)


def test_date_accuracy_by_event_date_or_text() -> None:
    def result(answer: str, sentences: list[list[int]], dates: list[str | None]) -> dict:
        return _result(answer=answer,
                       sentences=[{"text": "s", "citations": c, "supported": True}
                                  for c in sentences],
                       citations=[_cite(n, event_date=d) for n, d in enumerate(dates, 1)])

    day = "2025-04-28"
    assert t.date_correct(result("x", [[2], [1]], [None, day]), day)
    assert t.date_correct(result("x", [[], [1]], [day]), day)  # second sentence counts
    assert not t.date_correct(result("x", [[], [], [1]], [day]), day)  # third does not
    assert not t.date_correct(result("x", [[1]], ["2025-04-27"]), day)
    for text in ("It happened on 28 Apr 2025.", "on 28 April 2025 [1]", "On April 28, it",
                 "dated 2025-04-28.", "on 28 april 2025"):
        assert t.date_correct(result(text, [], []), day), text
    for text, other in (("on 28 March 2025", day), ("April 2", day), ("April 280", day),
                        ("on 128 April 2025", day), ("on April 28", "2025-04-02"),
                        ("2025-04-2", "2025-04-02")):
        assert not t.date_correct(result(text, [], []), other), text
    item = QAItem(id="q", question="When?", source=SRC, evidence="e", type="temporal",
                  date=day)
    scored = score_record(item, result("On 28 April 2025.", [], []), Gold({"x"}, {}, 1))
    assert scored["date_accuracy"] == 1.0


def test_latest_accuracy_is_the_first_citation() -> None:
    item = QAItem(id="l", question="What is the latest?", source=SRC, evidence="e",
                  type="latest")
    gold = Gold({"A"}, {}, 1, urls={url_key(SRC)})
    first = _result(citations=[_cite(1, url=SRC + "/"), _cite(2, url=OTHER)])
    second = _result(citations=[_cite(1, url=OTHER, article_id="B"), _cite(2, url=SRC)])
    by_id = _result(citations=[_cite(1, url=None, article_id="A")])  # a gold near-copy
    assert score_record(item, first, gold)["latest_accuracy"] == 1.0
    assert score_record(item, second, gold)["latest_accuracy"] == 0.0
    assert score_record(item, by_id, gold)["latest_accuracy"] == 1.0
    assert score_record(item, _result(refused=True), gold)["latest_accuracy"] == 0.0


EVENTS = [
    {"date": "2025-01-13", "source": SRC,
     "evidence": "Dockworkers at Port Alder voted on Monday to stage an all-out strike."},
    {"date": "2025-01-20", "source": OTHER,
     "evidence": "Cranes stood idle at Port Alder after 2,400 dockworkers walked out."},
    {"date": "2025-01-29", "source": "https://northernpost.vl/talks",
     "evidence": "Talks aimed at ending the dock strike broke down on Wednesday."},
    {"date": "2025-02-19", "source": "https://vellandherald.vl/deal",
     "evidence": "A deal to end the 31-day dock strike was reached yesterday."},
]


def _entry(date: str, sentence: str, citation: int) -> dict[str, Any]:
    return {"date": date, "date_text": date, "sentence": sentence, "citation": citation}


def test_timeline_metrics() -> None:
    entries = [
        # event 1 by a near-identical sentence, dated wrongly
        _entry("2025-01-14", "Dockworkers at Port Alder voted on Monday to stage an all-out "
                             "strike over pay.", 1),
        # event 3 by date and source, its sentence unlike the evidence; before event 2
        _entry("2025-01-29", "Negotiators left without agreement.", 2),
        # event 2 by containment
        _entry("2025-01-20", "Cranes stood idle at Port Alder after 2,400 dockworkers walked "
                             "out.", 3),
        # a distractor: right date and sentence of nothing, wrong source
        _entry("2025-02-19", "Ferries were cancelled.", 3),
    ]
    cites = [_cite(1, url=SRC), _cite(2, url="http://northernpost.vl/talks/"),
             _cite(3, url=OTHER)]
    got = t.timeline_scores(EVENTS, _result(timeline=entries, citations=cites))
    assert got["timeline_recall"] == 3 / 4
    # matched events 0, 1, 2 sit at entries 0, 2, 1: pairs (0,1) yes, (0,2) yes, (1,2) no
    assert got["timeline_order"] == pytest.approx(2 / 3)
    assert got["timeline_date_accuracy"] == pytest.approx(2 / 3)
    assert got["timeline_precision"] == 3 / 4  # the distractor matches nothing
    assert t.timeline_scores(EVENTS, _result()) == {"timeline_recall": 0.0,
                                                    "timeline_precision": 0.0,
                                                    "timeline_order": 1.0}
    one = t.timeline_scores(EVENTS, _result(timeline=entries[:1], citations=cites))
    assert one == {"timeline_recall": 0.25, "timeline_precision": 1.0, "timeline_order": 1.0,
                   "timeline_date_accuracy": 0}


def test_sentences_match_by_jaccard_or_containment() -> None:
    a = "the strike ended after nineteen hours of talks at the mediation service"
    assert t.sentences_match(a, "The strike ended after nineteen hours of talks.")  # contained
    # 7 shared of 10 tokens: 0.7
    assert t.sentences_match("w1 w2 w3 w4 w5 w6 w7 w8", "w1 w2 w3 w4 w5 w6 w7 x9 x10")
    # 5 shared of 11 tokens
    assert not t.sentences_match("w1 w2 w3 w4 w5 w6 w7 w8", "w1 w2 w3 w4 w5 x1 x2 x3")
    assert not t.sentences_match("", "anything")


def test_each_timeline_entry_matches_one_event() -> None:
    twice = [EVENTS[0], {**EVENTS[0], "date": "2025-01-14"}]
    entries = [_entry("2025-01-13", EVENTS[0]["evidence"], 1)]
    got = t.timeline_scores(twice, _result(timeline=entries, citations=[_cite(1)]))
    assert got["timeline_recall"] == 0.5


def test_topic_year_no_filter_and_timeline_through_score_record() -> None:
    year = QAItem(id="y", question="What did the 2023 inquiry find?", source=SRC,
                  evidence="e", type="topic_year", has_filter=True)
    gold = Gold({"A"}, {}, 1)
    assert score_record(year, _result(), gold)["topic_year_no_filter"] == 1.0
    filtered = _result(date_filter=_filter("2023-01-01", "2023-12-31"))
    assert score_record(year, filtered, gold)["topic_year_no_filter"] == 0.0
    line = QAItem(id="t", question="How did it develop?", type="timeline", timeline=EVENTS)
    entries = [_entry(e["date"], e["evidence"], 1) for e in EVENTS]
    got = score_record(line, _result(timeline=entries, citations=[_cite(1)]), gold)
    assert (got["timeline_recall"], got["timeline_order"]) == (1.0, 1.0)
    assert "refusal_rate" not in got and got["false_refusal_rate"] == 0.0  # answerable


def test_answers_without_dated_fields_are_not_scored(caplog: pytest.LogCaptureFixture
                                                     ) -> None:
    item = QAItem(id="y", question="?", source=SRC, evidence="e", type="topic_year",
                  has_filter=True)
    old = {k: v for k, v in _result().items() if k not in ("date_filter", "timeline")}
    with caplog.at_level(logging.WARNING, logger="eval.scoring"):
        row = aggregate([item], [{"id": "y", "config": "hybrid", "result": old}],
                        {"y": Gold({"A"}, {}, 1)})["hybrid"]
    assert "filter_accuracy" not in row and "topic_year_no_filter" not in row
    assert "no 'date_filter'" in caplog.text


def test_as_of_is_passed_only_to_engines_that_take_it() -> None:
    @dataclass(frozen=True)
    class Old:  # an engine's request from before dated answers
        question: str
        top_k: int | None = None

    @dataclass(frozen=True)
    class New(Old):
        as_of: dt.date | None = None

    assert not accepts_as_of(Old) and accepts_as_of(New) and accepts_as_of()  # today's `Ask`

"""`ingest_stream`: results as they become final, the same report as `ingest`, and a
consumer that stops early leaving a store as consistent as a finished run.

Real stores (as in test_store_lifecycle); the articles are written here into tmp_path,
except a sample of the shared BBC corpus read in place for the pooled-write case.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.stores import BBC, assert_consistent, make_settings
from tqdm import tqdm

import ingest.ingestor as ingestor
import ingest.pipeline as pipeline
from ingest.pipeline import ingest, ingest_stream
from ingest.results import Report, Result
from rag.answer.retrieve import Retriever
from rag.store.articles import ArticleStore, StoreError

STORIES = {
    "harbour.txt": "Harbour festival draws record crowds\n\nThe harbour festival drew more than "
                   "forty thousand visitors over the weekend, the organisers said, with tall "
                   "ships moored along the quay and music on three stages.",
    "library.txt": "Town library to open on Sundays\n\nThe town library will open on Sunday "
                   "afternoons from March after a volunteer scheme found enough helpers to "
                   "staff the reading rooms and the children's corner.",
    "bridge.txt": "Old railway bridge reopens to walkers\n\nThe old railway bridge over the "
                  "river reopened to walkers and cyclists on Monday after two years of "
                  "repairs to its iron girders and stone piers.",
    "orchard.txt": "Community orchard plants rare apple trees\n\nVolunteers planted sixty "
                   "apple trees of old local varieties in the community orchard, grafted "
                   "from the last surviving trees in farm gardens nearby.",
    "market.txt": "Farmers' market moves to the square\n\nThe weekly farmers' market will "
                  "move from the car park to the market square in spring, giving its forty "
                  "stalls more room and shoppers a shorter walk from the bus station.",
}


@pytest.fixture
def env(tmp_path: Path) -> SimpleNamespace:
    settings = make_settings(tmp_path / "data")
    files = []
    for name, text in STORIES.items():
        path = tmp_path / "in" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
        files.append(path)
    return SimpleNamespace(settings=settings, store=ArticleStore(settings), root=tmp_path,
                           files=files)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The labels of the sources ingest has read, in order."""
    seen: list[str] = []
    real = pipeline.read_source

    def read_source(source, *args, **kwargs):  # noqa: ANN001, ANN202 - pass-through
        seen.append(source.label)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(pipeline, "read_source", read_source)
    return seen


def stored_sources(store: ArticleStore) -> set[str]:
    return {p for a in store.list_articles() for p in a.paths}


def without_time(report: Report) -> Report:
    return dataclasses.replace(report, seconds=0.0)


# -- results as they come ---------------------------------------------------------------------


def test_each_result_comes_right_after_its_source(env: SimpleNamespace, reads: list[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingestor, "FLUSH_CHUNKS", 1)  # every article is written at once
    labels = [str(f) for f in env.files]
    stream = ingest_stream(labels, env.store, env.settings, progress=False)
    results = iter(stream)
    first = next(results)
    assert (first.source, first.status) == (labels[0], "added")
    assert reads == labels[:1]
    assert env.store.get_article(first.article_id) is not None  # written, not only reported
    second = next(results)
    assert (second.source, reads) == (labels[1], labels[:2])
    rest = list(results)
    assert reads == labels
    report = stream.result
    assert report.results == [first, second, *rest]
    assert [r.status for r in report.results] == ["added"] * len(labels)


@pytest.mark.skipif(not BBC.is_dir(), reason=f"shared corpora missing: {BBC}")
def test_pooled_writes_report_before_the_last_source_is_read(
    tmp_path: Path, reads: list[str]
) -> None:
    settings = make_settings(tmp_path / "data")
    store = ArticleStore(settings)
    files = [str(p) for p in sorted((BBC / "business").glob("*.txt"))[:40]]
    stream = ingest_stream(files, store, settings, progress=False)
    results = iter(stream)
    first = next(results)
    # New articles are embedded in pools of FLUSH_CHUNKS chunks: the first pool is
    # reported as soon as it is written, long before the last file is read.
    pooled = len(reads)
    assert 1 < pooled < len(files)
    assert first.status == "added" and first.source in reads
    assert {r.source for r in [first, *results]} == set(files)
    assert stream.result.count("added") == len(files)

    # Nothing to embed on a re-run: each result comes right after its file.
    reads.clear()
    again = iter(ingest_stream(files, store, settings, progress=False))
    assert next(again).status == "unchanged"
    assert reads == files[:1]
    assert all(r.status == "unchanged" for r in again)


def test_the_report_is_what_ingest_returns(env: SimpleNamespace) -> None:
    folder = env.root / "in"
    (folder / "README.txt").write_text("About these stories.\n", encoding="utf-8")
    (folder / "notes.docx").write_bytes(b"PK\x03\x04")
    (folder / "copy-of-harbour.txt").write_text(STORIES["harbour.txt"], encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    feed = env.root / "feed.jsonl"
    feed.write_text(json.dumps({"title": "Ferry fares frozen", "text": "Ferry fares will "
                               "stay frozen for another year, the island council said."})
                    + '\n{"text": \n'
                    + json.dumps({"title": "Lifeboat crew honoured", "text": "The lifeboat "
                                 "crew was honoured for thirty years of rescues at sea."})
                    + "\n", encoding="utf-8")
    refs = [str(folder), str(env.root / "missing.txt"), str(feed)]

    stream = ingest_stream(refs, env.store, env.settings, progress=False)
    streamed = list(stream)
    report = stream.result
    assert report.results == streamed

    other = make_settings(env.root / "other")
    seen: list[Result] = []
    expected = ingest(refs, ArticleStore(other), other, progress=False, on_result=seen.append)
    assert streamed == seen
    assert without_time(report) == without_time(expected)
    # the mix this was meant to cover
    assert {r.status for r in report.results} == {"added", "unchanged", "failed"}
    assert len(report.skipped) == 2 and len(report.failed) == 3
    assert any("same text as" in note for r in report.results for note in r.notes)
    assert_consistent(env.store)


# -- a consumer that stops early ------------------------------------------------------------


def test_closing_stops_before_the_next_source_and_keeps_what_was_written(
    env: SimpleNamespace, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingestor, "FLUSH_CHUNKS", 1)
    bars: list[tqdm] = []

    class Bar(tqdm):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(pipeline, "tqdm", Bar)
    labels = [str(f) for f in env.files]
    stream = ingest_stream(labels, env.store, env.settings, progress=True)
    first = next(iter(stream))
    assert first.status == "added"
    stream.close()

    assert reads == labels[:1]  # the later files were never even read
    assert [a.id for a in env.store.list_articles()] == [first.article_id]
    assert stored_sources(env.store) == {str(env.files[0].resolve())}
    assert_consistent(env.store)
    stored = env.store.get_article(first.article_id)
    hits = Retriever(env.store, "bm25").retrieve(stored.title, top_k=3)
    assert [h.article_id for h in hits] == [first.article_id]  # searchable by keyword
    assert [bar.disable for bar in bars] == [True]  # tqdm's mark of a closed bar

    # a later run picks up where this one stopped
    report = ingest(labels, env.store, env.settings, progress=False)
    assert [r.status for r in report.results] == ["unchanged"] + ["added"] * (len(labels) - 1)
    assert_consistent(env.store)


def test_closing_drops_articles_still_waiting_to_be_embedded(
    env: SimpleNamespace, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c, d = (str(f) for f in env.files[:4])
    kept = ingest([a], env.store, env.settings, progress=False).results[0]
    generation = env.store.generation()
    reads.clear()

    stream = ingest_stream([b, a, c, d], env.store, env.settings, progress=False)
    for result in stream:  # b waits for a pool; a, unchanged, is final at once
        assert (result.source, result.status) == (a, "unchanged")
        break
    stream.close()

    assert reads == [b, a]
    assert env.store.generation() == generation  # b was never written, not even in part
    assert [x.id for x in env.store.list_articles()] == [kept.article_id]
    assert_consistent(env.store)

    report = ingest([b, a, c, d], env.store, env.settings, progress=False)
    assert [(r.source, r.status) for r in report.results] == [
        (a, "unchanged"), (b, "added"), (c, "added"), (d, "added")]


def test_a_broken_store_still_reports_what_was_final_first(
    env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = (str(f) for f in env.files[:2])
    real = ArticleStore.write_articles
    title_b = STORIES[Path(b).name].split("\n", 1)[0]

    def write_articles(self: ArticleStore, items, *args, **kwargs):  # noqa: ANN001, ANN202
        if any(article.title == title_b for article, *_ in items):
            raise StoreError("the disk is full")
        return real(self, items, *args, **kwargs)

    monkeypatch.setattr(ArticleStore, "write_articles", write_articles)
    monkeypatch.setattr(ingestor, "FLUSH_CHUNKS", 1)  # a pool per article
    seen: list[Result] = []
    # a is written, then writing b fails the run
    with pytest.raises(StoreError, match="disk is full"):
        ingest([a, b], env.store, env.settings, progress=False, on_result=seen.append)
    assert [(r.source, r.status) for r in seen] == [(a, "added")]

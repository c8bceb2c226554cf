"""The keyword index is changed by each write, not rebuilt (issue 29): an article's words
are found as soon as its ingest returns, a removed one is forgotten at once, and a
writer killed between the vector write and the keyword write leaves a store that
`ingest check` finds and `--repair` mends.

Stores opened in this process are only read after a CLI subprocess wrote to them
(Chroma's embedded client keeps its vector index in memory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_store_lifecycle import (
    BBC,
    COLLECTION,
    SEED,
    bbc_files,
    cli_env,
    make_settings,
    run_cli,
)

from ingest.pipeline import ingest
from rag.answer.retrieve import Retriever
from rag.store.articles import ArticleStore
from rag.store.keyword import KeywordIndex
from rag.store.keyword_table import index_terms

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not SEED.is_file(), reason="shared corpora missing")

ZEBRA = "Zebra crossing rules\n\nA new zebra crossing law takes effect in Ruritania on Monday."
QUOKKA = "Quokka census\n\nRangers counted twelve thousand quokkas on the island of Rottnest."


def _env(data: Path) -> dict[str, str]:
    # PYTHONPATH: the child runs this checkout's code, whatever is installed
    return cli_env(RAG_DATA_DIR=str(data), RAG_COLLECTION=COLLECTION, PYTHONPATH=str(ROOT),
                   RAG_EMBED_MODEL="local:all-MiniLM-L6-v2")


def test_words_are_found_right_after_ingest_and_forgotten_on_remove(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    store = ArticleStore(settings)
    files = []
    for name, text in (("zebra", ZEBRA), ("quokka", QUOKKA)):
        files.append(tmp_path / f"{name}.txt")
        files[-1].write_text(text)
    ingest([str(files[0])], store, settings, progress=False)
    index = KeywordIndex(store)
    retriever = Retriever(store, "bm25", index)
    assert retriever.retrieve("quokka census Rottnest", top_k=3) == []

    ingest([str(files[1])], store, settings, progress=False)
    hits = retriever.retrieve("quokka census Rottnest", top_k=3)
    assert [h.title for h in hits] == ["Quokka census"]
    assert index.builds == 0 and index.is_current()  # nothing was rebuilt to find it
    assert store.keywords.ids() == set(store.chunks.get(include=[])["ids"])
    (rottnest,) = index_terms("Rottnest")
    assert store.keywords.known()(rottnest)

    store.remove_article(hits[0].article_id)
    assert retriever.retrieve("quokka census Rottnest", top_k=3) == []
    assert not store.keywords.known()(rottnest)  # its words are gone from the vocabulary
    assert store.keywords.ids() == set(store.chunks.get(include=[])["ids"])
    assert [h.title for h in retriever.retrieve("zebra crossing", top_k=3)] == [
        "Zebra crossing rules"]
    assert index.builds == 0


def test_hybrid_and_filters_use_the_table(tmp_path: Path) -> None:
    from rag.answer.retrieve import Filters

    settings = make_settings(tmp_path / "data")
    store = ArticleStore(settings)
    ingest([str(p) for p in bbc_files(2)], store, settings, progress=False)
    index = KeywordIndex(store)
    some = store.list_articles()[0]
    hits = Retriever(store, "bm25", index).retrieve(some.title, top_k=5)
    assert hits and hits[0].article_id == some.id
    hits = Retriever(store, "hybrid", index).retrieve(some.title, top_k=5)
    assert hits and hits[0].article_id == some.id
    other = Filters(exclude_ids=[some.id])
    assert some.id not in {h.article_id for h in Retriever(store, "bm25", index).retrieve(
        some.title, top_k=5, filters=other)}


@pytest.mark.parametrize("point", ["vectors", "keywords"])
def test_a_writer_killed_between_vectors_and_keywords_is_found_and_repaired(
        tmp_path: Path, point: str) -> None:
    data = tmp_path / "data"
    env = _env(data)
    first = run_cli("-q", str(SEED), cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    victim = sorted((BBC / "tech").glob("*.txt"))[0]
    killed = run_cli("-q", str(victim), cwd=tmp_path, env={**env, "RAG_TEST_KILL_AT": point})
    assert killed.returncode == 137, killed.stderr  # died as kill -9 would leave it

    found = run_cli("check", "--json", cwd=tmp_path, env=env)
    seen = json.loads(found.stdout)
    assert found.returncode == 1 and not seen["ok"], found.stdout
    assert len(seen["half_written"]) == 1
    if point == "vectors":  # its chunks are in Chroma, their words are not
        assert seen["keyword_missing"] > 0 and seen["keyword_extra"] == 0
    else:
        assert seen["keyword_missing"] == 0 and seen["keyword_extra"] == 0

    fixed = run_cli("check", "--repair", cwd=tmp_path, env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "ok: every check passed" in fixed.stdout
    after = json.loads(run_cli("check", "--json", cwd=tmp_path, env=env).stdout)
    assert after["ok"] and after["keyword_current"], after

    again = run_cli("-q", str(victim), cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    store = ArticleStore(make_settings(data))
    store.sync()
    assert store.keywords.ids() == set(store.chunks.get(include=[])["ids"])
    title = victim.read_text().split("\n", 1)[0].strip()
    hits = store.keywords.search(title, 3)
    assert hits and hits[0][2]["title"] == title


def test_a_keyword_table_out_of_step_is_found_and_repaired(tmp_path: Path) -> None:
    """Not through a dead writer: a row lost and one the store does not hold."""
    data = tmp_path / "data"
    env = _env(data)
    assert run_cli("-q", *map(str, bbc_files(1)), cwd=tmp_path, env=env).returncode == 0
    store = ArticleStore(make_settings(data))
    store.sync()
    ids = sorted(store.keywords.ids())
    store.keywords.remove_ids(ids[:2])
    store.keywords.add([("nowhere:v:0", "A chunk the store never held", {"article_id": "x"})])
    store.keywords.close()
    seen = json.loads(run_cli("check", "--json", cwd=tmp_path, env=env).stdout)
    assert not seen["ok"] and seen["keyword_missing"] == 2 and seen["keyword_extra"] == 1
    fixed = run_cli("check", "--repair", cwd=tmp_path, env=env)
    assert "2 chunk(s) added, 1 removed" in fixed.stdout, fixed.stdout
    assert json.loads(run_cli("check", "--json", cwd=tmp_path, env=env).stdout)["ok"]


def test_check_can_sample_the_vectors_of_a_large_store(tmp_path: Path) -> None:
    """`check --sample N` looks up N vectors, and still reads every chunk for the rest."""
    data = tmp_path / "data"
    env = _env(data)
    assert run_cli("-q", *map(str, bbc_files(2)), cwd=tmp_path, env=env).returncode == 0
    full = json.loads(run_cli("check", "--json", cwd=tmp_path, env=env).stdout)
    some = json.loads(run_cli("check", "--json", "--sample", "3", cwd=tmp_path, env=env).stdout)
    assert full["ok"] and some["ok"] and full["chunks"] == some["chunks"] > 3
    assert full["checked"] == full["chunks"] and some["checked"] == 3
    bad = run_cli("check", "--sample", "0", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "'0' is not a whole number above 0" in bad.stderr


def test_the_apps_quick_look_samples_runs_in_write_order_from_the_table(
        tmp_path: Path) -> None:
    """The app's start-up look takes its runs of chunks from the keyword table (Chroma
    pages by offset: 2.4 s a run at 400k chunks), the oldest and newest first; a store
    whose table is not current is still sampled, from Chroma."""
    from rag.store.health import check_store

    data = tmp_path / "data"
    env = _env(data)
    first, *rest = map(str, bbc_files(3))
    assert run_cli("-q", first, cwd=tmp_path, env=env).returncode == 0
    assert run_cli("-q", *rest, cwd=tmp_path, env=env).returncode == 0
    store = ArticleStore(make_settings(data))
    store.sync()
    [oldest] = [a for a in store.list_articles()
                if a.paths and a.paths[0] == str(Path(first).resolve())]
    runs = store.keywords.runs([0.0, 1.0], length=oldest.chunks)
    assert {i.split(":")[0] for i in runs[:oldest.chunks]} == {oldest.id}
    assert oldest.id not in {i.split(":")[0] for i in runs[oldest.chunks:]}

    offsets: list[int] = []
    real = store._chunks

    class Spy:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def get(self, *args: object, **kwargs: object) -> object:
            offsets.extend([kwargs["offset"]] if "offset" in kwargs else [])
            return real.get(*args, **kwargs)

    store._chunks = Spy()  # type: ignore[assignment]
    health = check_store(store, sample=30, quick=True)
    assert health.ok and health.keyword_current and offsets == []
    assert 20 <= health.checked <= 30  # random runs may overlap in a small store

    store.keywords.set_generation("elsewhere")  # as if another machine wrote since
    behind = check_store(store, sample=30, quick=True)
    assert not behind.keyword_current and 20 <= behind.checked <= 30 and offsets
    store._chunks = real


def test_dense_hits_are_read_from_the_table_or_from_chroma_when_it_lacks_them(
        tmp_path: Path) -> None:
    from rag.answer.retrieve import Filters

    settings = make_settings(tmp_path / "data")
    store = ArticleStore(settings)
    ingest([str(p) for p in bbc_files(3)], store, settings, progress=False)
    dense = Retriever(store, "dense")
    some = store.list_articles()[0]
    only = Filters(article_ids=[some.id])
    before = [dense.retrieve(some.title, top_k=5), dense.retrieve(some.title, 3, only)]
    assert before[0] and before[1] and {p.article_id for p in before[1]} == {some.id}
    store.keywords.remove_ids(sorted(store.keywords.ids()))  # a table behind the store
    after = [dense.retrieve(some.title, top_k=5), dense.retrieve(some.title, 3, only)]
    assert [[(p.chunk_id, p.text, p.title, p.start) for p in hits] for hits in before] == [
        [(p.chunk_id, p.text, p.title, p.start) for p in hits] for hits in after]

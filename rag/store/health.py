"""Is the store whole? `python -m ingest check [--repair]`, and the app's start-up look.

What can go wrong, each seen for real: vectors lost from Chroma's index while their rows
stay (two processes writing one embedded store: `../shared/fixtures`), chunks that no
committed article owns, articles whose chunks are missing, records a killed writer left
half-written, and a keyword index out of step with the chunks (missing some, or holding
some the store no longer does: a writer that died between the two, or one that does not
keep it). Every chunk's vector is still in
Chroma's records when the index lost it, so a repair rebuilds the index from them and
embeds nothing (`ArticleStore.rebuild_vectors`). Re-adding only the lost ones was tried
on the fixture: a damaged index lost others as they went in.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag.store.articles import ArticleStore
from rag.store.connection import StoreError, integrity, runaway_indexes, runaway_message
from rag.store.keyword import KeywordIndex
from rag.store.writes import writer_of

logger = logging.getLogger(__name__)

_PAGE = 500
_NEIGHBOURS = 10  # a chunk is found if it is among this many nearest to its own vector
_WIDE = 200  # ... or, when it is not, among this many (a wider, slower search)
_SAME = 1e-6  # cosine distance of an identical vector (duplicate texts)
Progress = Callable[[int, int], None]


@dataclass
class Health:
    articles: int = 0
    chunks: int = 0
    checked: int = 0  # chunks whose vector was looked up (all, or a sample)
    lost: list[str] = field(default_factory=list)  # chunk ids not found by their own vector
    orphans: list[str] = field(default_factory=list)  # chunks no committed article owns
    repeats: list[str] = field(default_factory=list)  # chunks repeating text of their article
    short: dict[str, tuple[int, int]] = field(default_factory=dict)  # id: (recorded, found)
    half_written: list[tuple[str, str]] = field(default_factory=list)  # (id, writer)
    keyword_current: bool = True  # the keyword table claims the store's generation
    keyword_missing: list[str] = field(default_factory=list)  # chunks it lacks
    keyword_extra: list[str] = field(default_factory=list)  # ids it holds the store does not
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.orphans or self.repeats or self.short
                    or self.half_written or self.keyword_wrong)

    @property
    def keyword_wrong(self) -> bool:
        """The keyword table claims the store's generation and holds other chunks. (One
        merely behind, as another machine's writes leave it, is a note: the next
        search there brings it into step.)"""
        return self.keyword_current and bool(self.keyword_missing or self.keyword_extra)

    def problems(self) -> list[str]:
        out = []
        if self.lost:
            out.append(f"{len(self.lost)} of {self.checked} chunks checked are not found by "
                       "their own vector (lost from the vector index)")
        if self.orphans:
            out.append(f"{len(self.orphans)} chunk(s) belong to no stored article")
        if self.repeats:
            out.append(f"{len(self.repeats)} chunk(s) repeat, word for word, a passage of "
                       "their own article (they crowd the vector index; newer versions keep "
                       "one copy)")
        if self.short:
            out.append(f"{len(self.short)} article(s) have fewer chunks than recorded")
        if self.half_written:
            writers = ", ".join(sorted({w for _, w in self.half_written}))
            out.append(f"{len(self.half_written)} article(s) were left half-written ({writers})")
        if self.keyword_wrong:
            out.append(f"the keyword index is out of step with the chunks: "
                       f"{len(self.keyword_missing)} chunk(s) missing from it, "
                       f"{len(self.keyword_extra)} held that the store no longer has")
        return out

    def notes(self) -> list[str]:
        if self.keyword_current:
            return []
        if self.keyword_missing or self.keyword_extra:
            return [f"the keyword index is behind the store ({len(self.keyword_missing)} "
                    f"chunk(s) to add, {len(self.keyword_extra)} to forget: another process "
                    "wrote without keeping this one, e.g. on another machine); the next "
                    "search here, or `--repair`, brings it into step"]
        return ["the keyword index holds every chunk but is not stamped with the store's "
                "generation: the next writer (or `--repair`) stamps it"]

    def report(self) -> str:
        lines = [f"{self.articles} article(s), {self.chunks} chunk(s); "
                 f"{self.checked} vector(s) looked up"]
        lines += [f"problem: {p}" for p in self.problems()]
        lines += [f"note: {n}" for n in self.notes()]
        lines += [f"repaired: {r}" for r in self.repaired]
        if self.ok:
            lines.append("ok: every check passed")
        elif not self.repaired:
            lines.append("run `python -m ingest check --repair` to fix what can be fixed")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "articles": self.articles, "chunks": self.chunks,
                "checked": self.checked, "lost": len(self.lost), "orphans": len(self.orphans),
                "repeats": len(self.repeats),
                "short": {k: list(v) for k, v in self.short.items()},
                "half_written": [list(x) for x in self.half_written],
                "keyword_current": self.keyword_current,
                "keyword_missing": len(self.keyword_missing),
                "keyword_extra": len(self.keyword_extra), "problems": self.problems(),
                "notes": self.notes(),
                "repaired": self.repaired}


def check_store(store: ArticleStore, sample: int | None = None,
                progress: Progress | None = None, quick: bool = False) -> Health:
    """Every check; `sample`: look up that many random chunks' vectors, not all.
    `quick` (the app's start-up look, with `sample`): only what needs no read of every
    chunk (half-written records, the sampled vectors, whether the keyword table claims
    the store's generation), so a million chunks take seconds, not minutes."""
    damaged = integrity(store.settings)
    if damaged:
        raise StoreError(f"the store at {store.location} is damaged (SQLite: {damaged[:120]}); "
                         "restore the folder from a backup, or move it aside and ingest the "
                         "articles again")
    runaway = runaway_indexes(store.settings)
    if runaway:
        raise StoreError(runaway_message(store.location, runaway))
    store.sync()
    health = Health()
    if not store.exists:
        return health
    if quick:
        return _quick(store, health, sample or 0, progress)
    records = store.articles.get(include=["metadatas"])
    committed = {aid: meta for aid, meta in zip(records["ids"], records["metadatas"], strict=True)
                 if meta.get("version") and not meta.get("dirty")}
    # every record's metadata is read here anyway: no need to ask whether a write is on
    health.half_written = [(aid, writer_of(meta)) for aid, meta
                           in zip(records["ids"], records["metadatas"], strict=True)
                           if meta.get("dirty")]
    health.articles = sum(1 for m in records["metadatas"] if m.get("version"))
    rows, texts = _rows(store)
    health.chunks = len(rows)
    dirty = {aid for aid, _ in health.half_written}
    per_article: Counter[str] = Counter()
    seen: set[tuple[str, int]] = set()
    for cid, meta in sorted(rows.items(), key=lambda r: r[1].get("chunk_index", 0)):
        aid = meta.get("article_id", "")
        owner = committed.get(aid)
        if owner is not None and meta.get("version") == owner.get("version"):
            per_article[aid] += 1
            key = (aid, texts[cid])
            if key in seen:
                health.repeats.append(cid)
            seen.add(key)
        elif aid not in dirty:  # a dirty article's chunks are recovery's business
            health.orphans.append(cid)
    for aid, meta in committed.items():
        recorded = int(meta.get("chunks") or 0)
        if per_article[aid] < recorded:
            health.short[aid] = (recorded, per_article[aid])
    ids = list(rows)
    if sample is not None and sample < len(ids):
        ids = random.Random(len(ids)).sample(ids, sample)
    health.checked = len(ids)
    health.lost = _unfound(store, ids, progress)
    index = KeywordIndex.of(store)
    health.keyword_current = index.is_current()
    held = store.keywords.ids() if store.keywords.exists() else set()
    health.keyword_missing = sorted(set(rows) - held)
    health.keyword_extra = sorted(held - set(rows))
    return health


def _quick(store: ArticleStore, health: Health, sample: int,
           progress: Progress | None) -> Health:
    health.half_written = store.half_written()
    health.articles = store.articles.count()
    health.chunks = store.chunks.count()
    # Runs of 10 chunks in a row: the oldest and the newest, where an index is likeliest
    # to have lost some (the fixture's lost vectors were the first written), then runs
    # at random. Taken from the keyword table, which numbers chunks in the order they
    # were written; Chroma pages by offset, and each read costs its offset (2.4 s at
    # 400k of 866k chunks), so it is asked only for a store whose table is not current.
    rng = random.Random(health.chunks)
    runs = max(2, sample // 10)
    ids: set[str] = set()
    health.keyword_current = KeywordIndex.of(store).is_current()
    if store.keywords.exists() and health.keyword_current:
        ids.update(store.keywords.runs([0.0, 1.0] + [rng.random() for _ in range(runs - 2)]))
    elif health.chunks:
        last = max(0, health.chunks - 10)
        for offset in [0, last] + [rng.randrange(last + 1) for _ in range(runs - 2)]:
            ids.update(store.chunks.get(limit=10, offset=offset, include=[])["ids"])
    health.checked = len(ids)
    health.lost = _unfound(store, sorted(ids), progress)
    return health


def repair(store: ArticleStore, health: Health, wait: float | None = None) -> Health:
    """Fix what `check` found, under the writer lock; returns a fresh check."""
    before = store.recovered
    with store.writing("repair", wait):
        if store.recovered > before:  # taking the lock rolled them back
            health.repaired.append(f"rolled back {store.recovered - before} half-written "
                                   "article(s)")
        if health.orphans:
            _delete(store, health.orphans)
            health.repaired.append(f"deleted {len(health.orphans)} orphan chunk(s)")
        if health.repeats:
            _drop_repeats(store, health.repeats)
            health.repaired.append(f"deleted {len(health.repeats)} repeated chunk(s), keeping "
                                   "one copy of each passage")
        if health.lost or health.repeats:  # repeats crowd the graph: rebuild without them
            health.repaired.append(f"rebuilt the vector index ({store.rebuild_vectors()} "
                                   f"chunks) to bring back {len(health.lost)} lost chunk(s)")
        if health.short:
            # A changed version makes the next ingest of the article's source rewrite it.
            for aid in health.short:
                stored = store.get_article(aid)
                store.articles.update(ids=[aid], metadatas=[
                    {"version": (stored.version if stored else "") + "-incomplete"}])
            names = ", ".join(sorted(health.short)[:5])
            health.repaired.append(f"marked {len(health.short)} article(s) with missing chunks "
                                   f"for re-ingest ({names}{'…' if len(health.short) > 5 else ''}"
                                   "): add their sources again")
        if health.orphans or health.repeats or health.short:
            store._bump_generation()  # derived indexes must follow
        if health.keyword_missing or health.keyword_extra or not health.keyword_current:
            added, removed = store.reconcile_keywords()
            health.repaired.append(f"brought the keyword index into step ({added} chunk(s) "
                                   f"added, {removed} removed)")
    after = check_store(store)
    after.repaired = health.repaired
    return after


def _delete(store: ArticleStore, ids: list[str]) -> None:
    store.keywords.remove_ids(ids)  # first: it never holds a chunk the store does not
    for start in range(0, len(ids), _PAGE):
        store.chunks.delete(ids=ids[start:start + _PAGE])


def _drop_repeats(store: ArticleStore, ids: list[str]) -> None:
    """Delete repeated chunks and lower their articles' recorded chunk counts."""
    owners: Counter[str] = Counter()
    for start in range(0, len(ids), _PAGE):
        got = store.chunks.get(ids=ids[start:start + _PAGE], include=["metadatas"])
        owners.update(m["article_id"] for m in got["metadatas"])
    _delete(store, ids)
    for aid, dropped in owners.items():
        got = store.articles.get(ids=[aid], include=["metadatas"])
        if got["ids"]:
            recorded = int(got["metadatas"][0].get("chunks") or 0)
            store.articles.update(ids=[aid], metadatas=[{"chunks": max(recorded - dropped, 1)}])


def _rows(store: ArticleStore) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Every chunk's metadata, and a hash of its text (not the text: a million chunks'
    texts would be gigabytes here)."""
    metas: dict[str, dict[str, Any]] = {}
    texts: dict[str, int] = {}
    ids = store._all_ids(store.chunks)  # then by id: Chroma's offsets cost their size
    for start in range(0, len(ids), _PAGE):
        page = store.chunks.get(ids=ids[start:start + _PAGE], include=["metadatas", "documents"])
        metas.update(zip(page["ids"], page["metadatas"], strict=True))
        texts.update((i, hash(t)) for i, t in zip(page["ids"], page["documents"], strict=True))
    return metas, texts


def _unfound(store: ArticleStore, ids: list[str], progress: Progress | None) -> list[str]:
    """The chunks a vector query with their own stored vector does not return."""
    lost: list[str] = []
    for start in range(0, len(ids), _PAGE):
        batch = ids[start:start + _PAGE]
        got = store.chunks.get(ids=batch, include=["embeddings"])
        vectors = dict(zip(got["ids"], got["embeddings"], strict=True))
        have = [i for i in batch if vectors.get(i) is not None and len(vectors[i])]
        lost += [i for i in batch if i not in set(have)]
        if have:
            hits = store.chunks.query(query_embeddings=np.asarray([vectors[i] for i in have]),
                                      n_results=min(_NEIGHBOURS, len(ids)),
                                      include=["distances"])
            unsure: dict[str, list[str]] = {}
            missed: list[str] = []
            for cid, found, dist in zip(have, hits["ids"], hits["distances"], strict=True):
                if cid in found:
                    continue
                if len(dist) == _NEIGHBOURS and dist[-1] <= _SAME:
                    unsure[cid] = found  # identical copies crowding it out, or a broken index
                else:
                    missed.append(cid)
            lost += _missed_wider(store, missed, vectors, len(ids))
            lost += _not_copies(store, unsure, vectors)
        if progress:
            progress(min(start + _PAGE, len(ids)), len(ids))
    return lost


def _missed_wider(store: ArticleStore, missed: list[str], vectors: dict[str, Any],
                  count: int) -> list[str]:
    """Of chunks missing from their own 10 nearest, those a much wider search does not
    find either. The index is approximate: among hundreds of near-identical chunks
    (seen: a 2,700-sentence article of one repeated sentence shape) a present vector
    can fall outside the first 10 it returns, and hnswlib searches a query of k results
    with at least k candidates, so asking for many more finds it. A vector really gone
    from the index is not found however many are asked for."""
    if not missed:
        return []
    hits = store.chunks.query(query_embeddings=np.asarray([vectors[i] for i in missed]),
                              n_results=min(_WIDE, count), include=["distances"])
    return [cid for cid, found in zip(missed, hits["ids"], strict=True) if cid not in found]


def _not_copies(store: ArticleStore, unsure: dict[str, list[str]],
                vectors: dict[str, Any]) -> list[str]:
    """Of chunks whose neighbours all sit at distance 0, those whose neighbours are not
    really copies of them (a damaged index reports 0 for unrelated vectors)."""
    if not unsure:
        return []
    others = sorted({i for found in unsure.values() for i in found})
    got = store.chunks.get(ids=others, include=["embeddings"])
    stored = {i: np.asarray(v, dtype=np.float32)
              for i, v in zip(got["ids"], got["embeddings"], strict=True)}
    lost = []
    for cid, found in unsure.items():
        mine = np.asarray(vectors[cid], dtype=np.float32)
        if not all(i in stored and np.allclose(stored[i], mine, atol=1e-5) for i in found):
            lost.append(cid)
    return lost

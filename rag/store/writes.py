"""Writing the store crash-safely: add, replace and remove articles, recover, rebuild.

`ArticleWrites` is a part of `rag.store.articles.ArticleStore` (a mixin: it uses the
store's collections, `writing`, `ensure`, `_guard`, `_open`, `_all_ids` and
`_bump_generation`).
Every write holds the store's writer lock (`ArticleStore.writing`; `rag.store.lock`:
one writer across processes and machines) and follows a small protocol, so a writer
killed at any point (kill -9) leaves a store that the next writer's recovery turns into
exactly what a clean run gives:

0. the chunk collection's metadata gets a new generation and names the writer under
   `writing` (`ArticleStore._bump_generation`);
1. the article record is marked `dirty=True`, naming its writer (a new one is created
   with `version=""`);
2. the new version's chunks are added (their ids carry the version), then their words
   to the keyword table (`rag.store.keyword_table`);
3. the record is updated to the new version, still dirty;
4. the words of chunks of any other version are forgotten, then those chunks deleted;
5. the record is marked clean;
6. a new generation, and `writing` is emptied.

Removing an article: mark it dirty with `version=""`, forget its words, delete its
chunks, then the record (with steps 0 and 6 around it). The keyword table so never
holds a chunk the store does not.

Recovery runs when a writer takes the lock and `writing` is not empty (or missing: a
store last written by an earlier version of this program): it deletes every chunk of
a dirty record not of the committed version, and those chunks' words (and the record
itself when nothing was ever committed). Holding the lock, it cannot touch a live writer's work.
Searches skip dirty-new records and never wait. Each write is one SQLite transaction
in the keyword table; a writer killed between Chroma and it leaves a dirty record, so
recovery covers it. A keyword table out of step otherwise (never built, or the store
changed by a writer that does not keep it) is brought into step by the difference of
chunk ids when a writer takes the lock (`reconcile_keywords`).

`RAG_TEST_KILL_AT=<point>` kills the writer there (tests of the above): `vectors`
(chunks written, their words not), `keywords` (both, not committed).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

from rag.records import Article, Chunk
from rag.store.connection import StoreError
from rag.store.lock import Waiting
from rag.store.metadata import article_meta, article_vector, chunk_dates, chunk_meta
from rag.store.reads import PAGE

logger = logging.getLogger(__name__)

REBUILD_SUFFIX = "-rebuild"


def _kill_point(name: str) -> None:
    """Die here, as kill -9 would, when a test asks (`RAG_TEST_KILL_AT`)."""
    if os.environ.get("RAG_TEST_KILL_AT") == name:
        os._exit(137)


def writer_of(meta: dict[str, Any]) -> str:
    """Who left a record dirty, as its metadata says."""
    return str(meta.get("writer") or "an earlier version of this program")


class ArticleWrites:
    """The store's write side (mixed into `ArticleStore`)."""

    def write_article(
        self,
        article: Article,
        chunks: Sequence[Chunk],
        embeddings: Sequence[Sequence[float]],
        paths: Iterable[str],
    ) -> None:
        """Replace whatever version of this article is stored with this one."""
        self.write_articles([(article, chunks, embeddings, paths)])

    def write_articles(self, items: Sequence[tuple[Article, Sequence[Chunk],
                                                   Sequence[Sequence[float]], Iterable[str]]]
                       ) -> None:
        """Write a pool of articles (steps 1-5 above, each step one call for the whole
        pool), under the writer lock. Why pooled: every Chroma write costs ~13 ms
        whatever its size (measured: per-article calls were half of ingest's time)."""
        if any(not chunks for _, chunks, _, _ in items):
            raise ValueError("an article needs at least one chunk")
        if len({a.id for a, *_ in items}) != len(items):
            raise ValueError("an article appears twice in one pool")
        if not items:
            return
        with self.writing():
            self.ensure()
            names = ", ".join(a.id for a, *_ in items[:3]) + ("…" if len(items) > 3 else "")
            self._guard(f"writing article {names}", self._write,
                        [(a, c, e, sorted(set(p))) for a, c, e, p in items])

    def _write(self, items: list[tuple[Article, Sequence[Chunk], Sequence[Sequence[float]],
                                       list[str]]]) -> None:
        ids = [a.id for a, *_ in items]
        vectors = [article_vector(embeddings) for _, _, embeddings, _ in items]
        self._bump_generation(writing=True)  # an index built mid-write is stale
        old = self.articles.get(ids=ids, include=["metadatas"])
        old_meta = dict(zip(old["ids"], old["metadatas"], strict=True))
        dirty = {"dirty": True, "writer": self._writer_name()}
        # 1. mark dirty; a committed record keeps its text and metadata until step 3, so
        # recovery can fall back to it intact
        if old_meta:
            self.articles.update(ids=list(old_meta), metadatas=[dirty] * len(old_meta))
        new = [(i, item) for i, item in enumerate(items) if item[0].id not in old_meta]
        if new:
            self.articles.upsert(
                ids=[a.id for _, (a, *_) in new], embeddings=[vectors[i] for i, _ in new],
                documents=[a.text for _, (a, *_) in new],
                metadatas=[{"version": "", "title": a.title, **dirty} for _, (a, *_) in new],
            )
        # 2. the new chunks
        chunk_ids, chunk_vectors, texts, metas = [], [], [], []
        for article, chunks, embeddings, paths in items:
            meta = chunk_meta(article, paths[0] if paths else None)
            for c, e in zip(chunks, embeddings, strict=True):
                chunk_ids.append(c.id)
                chunk_vectors.append(list(e))
                texts.append(c.text)
                metas.append({**meta, "version": article.version, "chunk_index": c.index,
                              "start": c.start, "end": c.end, "paragraph": c.paragraph,
                              "paragraph_end": c.paragraph_end,
                              **chunk_dates(c.text, article.published)})
        self.chunks.upsert(ids=chunk_ids, embeddings=chunk_vectors, documents=texts,
                           metadatas=metas)
        _kill_point("vectors")
        self.keywords.add(zip(chunk_ids, texts, metas, strict=True))
        _kill_point("keywords")
        # 3. commit the new versions
        records = []
        for article, chunks, _, paths in items:
            record = article_meta(article, paths, len(chunks))
            # upsert merges metadata: drop keys the new version lacks (None deletes a key)
            stale = {k: None for k in old_meta.get(article.id, {})
                     if k not in record and k not in dirty}
            records.append({**stale, **record, **dirty})
        self.articles.upsert(ids=ids, embeddings=vectors,
                             documents=[a.text for a, *_ in items], metadatas=records)
        # 4. drop other versions (only articles that had one), 5. clean
        replaced = [a for a, *_ in items if a.id in old_meta]
        for article in replaced:
            self.keywords.remove_article(article.id, keep_version=article.version)
        if replaced:
            self.chunks.delete(where={"$and": [
                {"article_id": {"$in": [a.id for a in replaced]}},
                {"version": {"$nin": [a.version for a in replaced]}}]})
        self.articles.update(ids=ids, metadatas=[{"dirty": False, "writer": None}] * len(ids))
        self._bump_generation()

    def _writer_name(self) -> str:
        info = self.lock.info or {}
        return f"{info.get('what', 'writer')} pid {info.get('pid')} on {info.get('host')}"

    def set_paths(self, article_id: str, paths: Iterable[str]) -> None:
        """Record which files hold this article; the chunks keep their first path."""
        paths = sorted(set(paths))
        with self.writing():
            # Chroma merges metadata on update and upsert alike; None deletes a key.
            self._guard("recording paths", lambda: self.articles.update(
                ids=[article_id], metadatas=[{"paths": paths or None}]))

    def remove_article(self, article_id: str) -> bool:
        if not self.exists and not self.sync():
            return False
        with self.writing("remove"):
            return bool(self._guard(f"removing article {article_id}", self._remove, article_id))

    def _remove(self, article_id: str) -> bool:
        if not self.exists:
            return False
        got = self.articles.get(ids=[article_id])
        if not got["ids"]:
            return False
        self._bump_generation(writing=True)
        self.articles.update(ids=[article_id], metadatas=[
            {"version": "", "dirty": True, "writer": self._writer_name()}])
        self.keywords.remove_article(article_id)
        self.chunks.delete(where={"article_id": article_id})
        self.articles.delete(ids=[article_id])
        self._bump_generation()
        return True

    # -- recovery ----------------------------------------------------------

    def recover(self, wait: float | None = None, on_wait: Waiting | None = None) -> int:
        """Finish or undo what a writer killed mid-write left behind; how many articles.
        Takes the writer lock, so it never touches a live writer's work in progress."""
        before = self.recovered
        with self.writing("recovery", wait, on_wait):
            pass
        return self.recovered - before

    def _dirty(self) -> list[tuple[str, dict[str, Any]]]:
        """(article id, metadata) of records a writer left mid-write. Looked for only when
        the store says a write is under way: the look reads every record's metadata
        (1 s at 147k articles), and every writer's first step would pay it."""
        if not self.exists or not self.write_under_way():
            return []
        got = self._guard("reading half-written records", lambda: self.articles.get(
            where={"dirty": True}, include=["metadatas"]))
        return list(zip(got["ids"], got["metadatas"], strict=True))

    def half_written(self) -> list[tuple[str, str]]:
        """(article id, writer) of records a writer left mid-write (for `check`)."""
        return [(aid, writer_of(meta)) for aid, meta in self._dirty()]

    def _recover(self) -> int:
        """Finish or undo each record a dead writer left dirty (as said above); `writing`
        runs it on first entry. How many."""
        if not self.exists or not self.write_under_way():
            return 0
        dirty = self._dirty()
        for aid, meta in dirty:
            version = meta.get("version", "")
            logger.info("rolling back article %s, left half-written by %s", aid,
                        meta.get("writer") or "an interrupted writer")
            if version:
                self.keywords.remove_article(aid, keep_version=version)
                self.chunks.delete(
                    where={"$and": [{"article_id": aid}, {"version": {"$ne": version}}]}
                )
                self.articles.update(ids=[aid], metadatas=[{"dirty": False, "writer": None}])
            else:
                self.keywords.remove_article(aid)
                self.chunks.delete(where={"article_id": aid})
                self.articles.delete(ids=[aid])
        self._bump_generation()  # and no write is under way now
        return len(dirty)

    # -- the keyword table ---------------------------------------------------

    def reconcile_keywords(self) -> tuple[int, int]:
        """Bring the keyword table into step with the chunks by the difference of their
        ids (a chunk id names its article's version, so a held one is current), under
        the writer lock. Building it for a store that had none is this too. Returns
        (chunks added, removed)."""
        with self.writing("keyword index"):
            if not self.exists:
                self.keywords.clear()
                return 0, 0
            stored = set(self._guard("reading it", lambda: self._all_ids(self.chunks)))
            held = self.keywords.ids()
            extra = sorted(held - stored)
            removed = self.keywords.remove_ids(extra) if extra else 0
            missing = sorted(stored - held)
            added = 0
            for start in range(0, len(missing), PAGE):
                got = self._guard("reading it", lambda s=start: self.chunks.get(
                    ids=missing[s:s + PAGE], include=["documents", "metadatas"]))
                added += self.keywords.add(zip(got["ids"], got["documents"], got["metadatas"],
                                               strict=True))
            self.keywords.set_generation(self.generation())
            return added, removed

    # -- rebuilding the vector index -----------------------------------------

    def rebuild_vectors(self) -> int:
        """Copy every chunk, with its stored vector, into a new collection and swap it in:
        a damaged vector index is rebuilt whole and nothing is embedded again. Killed
        part-way, the old collection is intact (before the delete) or the new one is
        complete and renamed by the next writer (`_finish_rebuild`). Returns the count."""
        with self.writing("repair"):
            spare = self.name + REBUILD_SUFFIX
            if spare in {c.name for c in self.client.list_collections()}:
                self.client.delete_collection(spare)  # an earlier rebuild that died early
            old = self.client.get_collection(self.name, embedding_function=None)
            meta = {k: v for k, v in (old.metadata or {}).items() if not k.startswith("hnsw:")}
            new = self.client.create_collection(
                spare, metadata={**meta, "rebuilding": True},
                configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
            offset = 0
            while True:
                page = old.get(limit=PAGE, offset=offset,
                               include=["embeddings", "documents", "metadatas"])
                if page["ids"]:
                    new.add(ids=page["ids"], embeddings=page["embeddings"],
                            documents=page["documents"], metadatas=page["metadatas"])
                if len(page["ids"]) < PAGE:
                    break
                offset += PAGE
            if new.count() != old.count():
                raise StoreError(f"rebuilding the vector index of {self.location} copied "
                                 f"{new.count()} of {old.count()} chunks; nothing was changed")
            new.modify(metadata={**meta, "rebuilding": False})
            self.client.delete_collection(self.name)
            new.modify(name=self.name)
            self._open(create=False)
            self._bump_generation()
            return new.count()

    def _finish_rebuild(self) -> None:
        """A rebuild killed between deleting the old collection and renaming the new."""
        names = {c.name for c in self.client.list_collections()}
        spare = self.name + REBUILD_SUFFIX
        if spare in names and self.name not in names:
            new = self.client.get_collection(spare, embedding_function=None)
            if not (new.metadata or {}).get("rebuilding"):
                logger.info("finishing an interrupted rebuild of %s", self.location)
                new.modify(name=self.name)
                self._open(create=False)

"""The Chroma store: one collection of chunks, one of articles, written crash-safely.

The same code serves the embedded `PersistentClient` and a `chroma run` server
(`CHROMA_HOST`). Every write holds the store's writer lock (`rag.store.lock`: one writer
across processes and machines) and follows a small protocol, so a writer killed at any
point (kill -9) leaves a store that the next writer's recovery turns into exactly what
a clean run gives:

1. the article record is marked `dirty=True`, naming its writer (a new one is created
   with `version=""`);
2. the new version's chunks are added (their ids carry the version);
3. the record is updated to the new version, still dirty;
4. chunks of any other version are deleted;
5. the record is marked clean.

Recovery runs when a writer takes the lock: it deletes every chunk of a dirty record
not of the committed version (and the record itself when nothing was ever committed).
Holding the lock, it cannot touch a live writer's work. Readers skip dirty-new records
and never wait; `sync` makes them see other processes' writes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from chromadb.api.models.Collection import Collection

from rag.dates.parse import resolve_dates
from rag.records import Article, Chunk, StoredArticle, canonical_url, split_line_ref
from rag.settings import Settings
from rag.store.connection import Connection, StoreError, connect, location, store_error
from rag.store.embeddings import EmbedSpec, LlamaIndexEmbeddingFunction, get_embed_model
from rag.store.lock import FileWriterLock, LeaseWriterLock, Waiting, WriterBusyError

logger = logging.getLogger(__name__)

ARTICLES_SUFFIX = "-articles"
REBUILD_SUFFIX = "-rebuild"
_PAGE = 1000
__all__ = ["ArticleStore", "EmbeddingMismatchError", "StoreError", "WriterBusyError",
           "date_int"]


class EmbeddingMismatchError(StoreError):
    pass


def date_int(value: date) -> int:
    """A date as YYYYMMDD: how chunks store it, so Chroma can compare it in `where`."""
    return value.year * 10000 + value.month * 100 + value.day


class ArticleStore:
    """Articles and their chunks in Chroma. Opening does not load the embedding model."""

    def __init__(self, settings: Settings, check_model: bool = True) -> None:
        self.settings = settings
        self.spec = EmbedSpec.parse(settings.embed_model)
        self.location = location(settings)
        self.conn: Connection = connect(settings)
        self._function = LlamaIndexEmbeddingFunction(None, settings.embed_model)
        self._chunks: Collection | None = None
        self._articles: Collection | None = None
        self._check = check_model
        self._epoch = self.conn.epoch
        self.recovered = 0  # articles this object rolled back or finished (reports)
        self.lock = self.conn.writer(settings.collection, self._new_lock)
        self._guard("opening it", self._open, False)
        if not self.conn.seen:
            self.conn.seen = self.generation()

    def _new_lock(self) -> FileWriterLock | LeaseWriterLock:
        if self.conn.embedded:
            return FileWriterLock(self.settings.data_dir, self.name)
        return LeaseWriterLock(self.conn.client, self.name)

    @property
    def client(self) -> Any:  # noqa: ANN401 - chromadb's ClientAPI
        return self.conn.client

    def _guard(self, doing: str, fn: Any, *args: Any) -> Any:  # noqa: ANN401
        """Run a store call; a failure of the store itself becomes one clear line."""
        try:
            return fn(*args)
        except (StoreError, ValueError):
            raise
        except Exception as exc:
            raise store_error(exc, self.location, doing) from exc

    # -- collections -------------------------------------------------------

    @property
    def name(self) -> str:
        return self.settings.collection

    def _open(self, create: bool) -> bool:
        self._epoch = self.conn.epoch
        existing = {c.name for c in self.client.list_collections()}
        names = (self.name, self.name + ARTICLES_SUFFIX)
        if not create and not all(n in existing for n in names):
            self._chunks = self._articles = None
            return False
        if self.name in existing and self._check:
            self._check_model(self.client.get_collection(self.name, embedding_function=None))
        meta: dict[str, Any] = {"embed_model": self.spec.name}
        if create:
            meta["embed_dim"] = len(self.embed_model.get_text_embedding("dimension probe"))
            meta["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        kwargs: dict[str, Any] = {
            "metadata": meta,
            "configuration": {"hnsw": {"space": "cosine"}},
            "embedding_function": self._function,
        }
        self._chunks = self.client.get_or_create_collection(self.name, **kwargs)
        self._articles = self.client.get_or_create_collection(
            self.name + ARTICLES_SUFFIX, **kwargs
        )
        return True

    def _check_model(self, collection: Collection) -> None:
        recorded = (collection.metadata or {}).get("embed_model")
        if recorded and recorded != self.spec.name:
            raise EmbeddingMismatchError(
                f"collection {self.name!r} in {self.location} was built with embedding model "
                f"{recorded!r} (dimension {collection.metadata.get('embed_dim')}), but "
                f"RAG_EMBED_MODEL is {self.settings.embed_model!r}. Mixing them would make search "
                f"meaningless. Either set RAG_EMBED_MODEL back, use another --collection, or "
                f"re-index: `python -m ingest drop --yes` then ingest your articles again."
            )

    @property
    def exists(self) -> bool:
        return self._chunks is not None

    def ensure(self) -> None:
        if not self.exists:
            with self.writing():
                if not self.exists:
                    self._guard("creating its collections", self._open, True)

    @property
    def chunks(self) -> Collection:
        if self._epoch != self.conn.epoch:  # another store object of this process reopened
            self._guard("opening it", self._open, False)
        if self._chunks is None:
            raise StoreError(self.empty_message())
        return self._chunks

    @property
    def articles(self) -> Collection:
        if self._epoch != self.conn.epoch:
            self._guard("opening it", self._open, False)
        if self._articles is None:
            raise StoreError(self.empty_message())
        return self._articles

    def has_chunks(self) -> bool:
        """Whether there is anything to answer from (the one emptiness check); sees what
        other processes wrote."""
        self.sync()
        return self.exists and self._guard("counting", self.chunks.count) > 0

    def existing_chunks(self, ids: list[str]) -> set[str]:
        """Which of these chunk ids the store holds now (checks a stale keyword index)."""
        got = self._guard("reading it", lambda: self.chunks.get(ids=ids, include=[]))
        return set(got["ids"])

    def empty_message(self) -> str:
        return (
            f"the collection {self.name!r} in {self.location} has no articles yet; add some with "
            "`python -m ingest PATH-OR-URL ...`"
        )

    @property
    def embed_model(self):  # noqa: ANN201 - a llama-index BaseEmbedding
        model = get_embed_model(self.settings)
        self._function.model = model
        return model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_model.get_text_embedding_batch(list(texts))

    # -- keeping up with other writers ---------------------------------------

    def generation(self) -> str:
        """A stamp that changes whenever chunks are written or removed, by any process
        (derived indexes and `sync` compare it). Read fresh from the store each time."""
        try:
            collection = self.client.get_collection(self.name, embedding_function=None)
        except Exception as exc:  # not created yet, or dropped by another process
            if "does not exist" in str(exc) or type(exc).__name__ == "NotFoundError":
                return ""
            raise store_error(exc, self.location, "reading it") from exc
        return str((collection.metadata or {}).get("generation", "")) or "created"

    def sync(self) -> bool:
        """Catch up with other processes' writes: reopen the embedded client (its vector
        index lives in this process's memory) or, on a server, fetch the collections
        again. One cheap read when nothing changed; True if something had."""
        generation = self.generation()
        if generation == self.conn.seen:
            if self._epoch != self.conn.epoch or (generation and not self.exists):
                self._guard("opening it", self._open, False)
            return False
        self._guard("reopening it", self.conn.reopen)
        self.conn.seen = generation
        self._guard("opening it", self._open, False)
        return True

    @contextmanager
    def writing(self, what: str = "writer", wait: float | None = None,
                on_wait: Waiting | None = None) -> Iterator[None]:
        """Hold the store's writer lock (re-entrant within a thread). On first entry,
        catch up with other writers, then roll back what a dead writer left half-written:
        while we hold the lock no live writer can be mid-write. `wait`: seconds to wait
        for another writer (None: as long as it takes), then WriterBusyError."""
        with self.lock.hold(what, wait, on_wait) as outermost:
            if outermost:
                self._guard("finishing a rebuild", self._finish_rebuild)
                self.sync()
                self.recovered += self._recover()
            yield

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
                page = old.get(limit=_PAGE, offset=offset,
                               include=["embeddings", "documents", "metadatas"])
                if page["ids"]:
                    new.add(ids=page["ids"], embeddings=page["embeddings"],
                            documents=page["documents"], metadatas=page["metadatas"])
                if len(page["ids"]) < _PAGE:
                    break
                offset += _PAGE
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

    def _bump_generation(self) -> None:
        collection = self.client.get_collection(self.name, embedding_function=None)
        meta = {k: v for k, v in (collection.metadata or {}).items() if not k.startswith("hnsw:")}
        stamp = uuid.uuid4().hex[:12]
        self.chunks.modify(metadata={**meta, "generation": stamp})
        self.conn.seen = stamp  # our own write: nothing to reopen for

    def drop(self) -> None:
        with self.writing("drop"):
            for name in (self.name, self.name + ARTICLES_SUFFIX):
                if name in {c.name for c in self.client.list_collections()}:
                    self.client.delete_collection(name)
            self._chunks = self._articles = None
            self.conn.seen = ""

    # -- reading -----------------------------------------------------------

    def _get_all(self, collection: Collection, **kwargs: Any) -> dict[str, list[Any]]:
        """`collection.get` in pages: one call over a large collection hits Chroma's limits."""
        out: dict[str, list[Any]] = {"ids": [], "metadatas": [], "documents": []}
        offset = 0
        while True:
            page = collection.get(limit=_PAGE, offset=offset, **kwargs)
            for key in out:
                out[key].extend(page.get(key) or [])
            if len(page["ids"]) < _PAGE:
                return out
            offset += _PAGE

    def list_articles(self) -> list[StoredArticle]:
        if not self.exists:
            return []
        got = self._get_all(self.articles, include=["metadatas"])
        found = [
            _to_article(i, m, "") for i, m in zip(got["ids"], got["metadatas"], strict=True)
            if m.get("version")
        ]
        return sorted(found, key=lambda a: (a.published or date.min, a.title), reverse=True)

    def story_members(self, stories: Iterable[str]) -> dict[str, list[StoredArticle]]:
        """The stored articles of each story (texts left out). An article stored before
        stories were kept is a story of its own, named by its id."""
        stories = sorted(set(stories))
        if not self.exists or not stories:
            return {}
        got = self._guard("reading it", lambda: self.articles.get(
            where={"story": {"$in": stories}}, include=["metadatas"]))
        out: dict[str, list[StoredArticle]] = {}
        for aid, meta in zip(got["ids"], got["metadatas"], strict=True):
            if meta.get("version"):
                out.setdefault(str(meta["story"]), []).append(_to_article(aid, meta, ""))
        missing = [s for s in stories if s not in out]
        if missing:  # older records carry no story: the id is the story
            got = self._guard("reading it", lambda: self.articles.get(
                ids=missing, include=["metadatas"]))
            for aid, meta in zip(got["ids"], got["metadatas"], strict=True):
                if meta.get("version"):
                    out[aid] = [_to_article(aid, meta, "")]
        return out

    def nearest_articles(self, vectors: list[list[float]], n: int, min_similarity: float
                         ) -> list[list[tuple[str, str, str]]]:
        """For each vector, the stored articles nearest to it, at least `min_similarity`
        (cosine) close: (id, text, story). Ingest compares a new article with these to
        find its copies."""
        if not vectors:
            return []
        if not self.exists or not (count := self.articles.count()):
            return [[] for _ in vectors]
        got = self._guard("reading it", lambda: self.articles.query(
            query_embeddings=vectors, n_results=min(n, count),
            include=["documents", "metadatas", "distances"]))
        return [[(aid, doc or "", str(meta.get("story") or aid))
                 for aid, doc, meta, dist in zip(ids, docs, metas, dists, strict=True)
                 if meta.get("version") and 1.0 - dist >= min_similarity]
                for ids, docs, metas, dists in zip(got["ids"], got["documents"],
                                                   got["metadatas"], got["distances"],
                                                   strict=True)]

    def newest_published(self) -> date | None:
        """The latest publication date in the library (what "now" is in an archive)."""
        if not self.exists:
            return None
        got = self._guard("reading it", lambda: self._get_all(self.articles,
                                                              include=["metadatas"]))
        days = [m.get("published") for m in got["metadatas"] if m.get("published")]
        return date.fromisoformat(max(days)) if days else None

    def get_article(self, article_id: str) -> StoredArticle | None:
        if not self.exists:
            return None
        got = self.articles.get(ids=[article_id], include=["metadatas", "documents"])
        if not got["ids"] or not got["metadatas"][0].get("version"):
            return None
        return _to_article(got["ids"][0], got["metadatas"][0], got["documents"][0] or "")

    def find_by_path(self, path: str) -> list[StoredArticle]:
        if not self.exists:
            return []
        got = self.articles.get(where={"paths": {"$contains": path}}, include=["metadatas"])
        return [_to_article(i, m, "") for i, m in zip(got["ids"], got["metadatas"], strict=True)
                if m.get("version")]

    def resolve(self, ref: str) -> StoredArticle | None:
        """An article by id, URL or file path: what `remove` accepts."""
        article = self.get_article(ref)
        if article or not self.exists:
            return article
        if ref.startswith(("http://", "https://")):
            got = self.articles.get(where={"url": canonical_url(ref)}, include=["metadatas"])
            ids = got["ids"]
        else:
            from pathlib import Path

            ids = [a.id for a in self.find_by_path(str(Path(ref).expanduser().resolve()))]
        return self.get_article(ids[0]) if ids else None

    def resolve_all(self, ref: str) -> list[StoredArticle]:
        """Every article `ref` names: one by id or URL; by a path, each article that file
        holds (a .jsonl file holds one per line, stored as `file.jsonl#L<n>`: `line_ref`)."""
        one = self.resolve(ref)
        found = {one.id: one} if one else {}
        if self.exists and not ref.startswith(("http://", "https://")):
            from pathlib import Path

            file = str(Path(ref).expanduser().resolve())
            for article in self.list_articles():
                if any(line is not None and name == file
                       for name, line in map(split_line_ref, article.paths)):
                    found.setdefault(article.id, article)
        return list(found.values())

    def chunk_records(self, article_id: str | None = None) -> list[dict[str, Any]]:
        """Chunks with their metadata, in article order: for citations, stats and tests."""
        if not self.exists:
            return []
        where = {"article_id": article_id} if article_id else None
        got = self._get_all(self.chunks, where=where, include=["metadatas", "documents"])
        rows = [
            {"id": i, "text": d, **m}
            for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        ]
        return sorted(rows, key=lambda r: (r["article_id"], r["chunk_index"]))

    def counts(self) -> tuple[int, int]:
        if not self.exists:
            return 0, 0
        return len(self.list_articles()), self.chunks.count()

    # -- writing -----------------------------------------------------------

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
        self._bump_generation()  # before and after: a reader that indexes mid-write is stale
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
            meta = _chunk_base_meta(article, paths[0] if paths else None)
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
        # 3. commit the new versions
        records = []
        for article, chunks, _, paths in items:
            record = _article_meta(article, paths, len(chunks))
            # upsert merges metadata: drop keys the new version lacks (None deletes a key)
            stale = {k: None for k in old_meta.get(article.id, {})
                     if k not in record and k not in dirty}
            records.append({**stale, **record, **dirty})
        self.articles.upsert(ids=ids, embeddings=vectors,
                             documents=[a.text for a, *_ in items], metadatas=records)
        # 4. drop other versions (only articles that had one), 5. clean
        replaced = [a for a, *_ in items if a.id in old_meta]
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
        self.articles.update(ids=[article_id], metadatas=[
            {"version": "", "dirty": True, "writer": self._writer_name()}])
        self.chunks.delete(where={"article_id": article_id})
        self.articles.delete(ids=[article_id])
        self._bump_generation()
        return True

    def recover(self, wait: float | None = None, on_wait: Waiting | None = None) -> int:
        """Finish or undo what a writer killed mid-write left behind; how many articles.
        Takes the writer lock, so it never touches a live writer's work in progress."""
        before = self.recovered
        with self.writing("recovery", wait, on_wait):
            pass
        return self.recovered - before

    def _dirty(self) -> list[tuple[str, dict[str, Any]]]:
        """(article id, metadata) of records a writer left mid-write."""
        if not self.exists:
            return []
        got = self._guard("reading half-written records", lambda: self.articles.get(
            where={"dirty": True}, include=["metadatas"]))
        return list(zip(got["ids"], got["metadatas"], strict=True))

    def half_written(self) -> list[tuple[str, str]]:
        """(article id, writer) of records a writer left mid-write (for `check`)."""
        return [(aid, str(meta.get("writer") or "an earlier version of this program"))
                for aid, meta in self._dirty()]

    def _recover(self) -> int:
        dirty = self._dirty()
        for aid, meta in dirty:
            version = meta.get("version", "")
            logger.info("rolling back article %s, left half-written by %s", aid,
                        meta.get("writer") or "an interrupted writer")
            if version:
                self.chunks.delete(
                    where={"$and": [{"article_id": aid}, {"version": {"$ne": version}}]}
                )
                self.articles.update(ids=[aid], metadatas=[{"dirty": False, "writer": None}])
            else:
                self.chunks.delete(where={"article_id": aid})
                self.articles.delete(ids=[aid])
        if dirty:
            self._bump_generation()
        return len(dirty)


def _chunk_base_meta(article: Article, path: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"article_id": article.id, "title": article.title,
                            "story": article.story or article.id}
    if article.published:
        meta["published"] = article.published.isoformat()
        meta["published_int"] = date_int(article.published)
    if article.outlet:
        meta["outlet"] = article.outlet
    if article.url:
        meta["url"] = article.url
    if path:
        meta["path"] = path
    return meta


def _article_meta(article: Article, paths: list[str], n_chunks: int) -> dict[str, Any]:
    meta = _chunk_base_meta(article, None)
    del meta["article_id"]
    if article.url:
        meta["url"] = canonical_url(article.url)
        meta["source_url"] = article.url
    meta.update({
        "version": article.version,
        "chunks": n_chunks,
        "ingested_at": datetime.now(UTC).isoformat(timespec="seconds"),
    })
    if paths:
        meta["paths"] = paths
    if article.authors:
        meta["authors"] = list(article.authors)
    if article.feed_summary:
        meta["feed_summary"] = True
    return meta


def article_vector(embeddings: Sequence[Sequence[float]]) -> list[float]:
    """An article's vector as the article collection keeps it: its chunks' mean,
    normalised (what ingest searches with to find an article's copies)."""
    mean = np.mean(np.asarray(embeddings, dtype=np.float32), axis=0)
    return (mean / (np.linalg.norm(mean) or 1.0)).tolist()


def chunk_dates(text: str, published: date | None) -> dict[str, Any]:
    """The days a chunk's text speaks of, read against the publication date, as chunk
    metadata: `dates` lists each mention's range ("20250428-20250428;..."), and
    `dates_first`/`dates_last` span them all, so a Chroma `where` can pre-select and
    `Filters.match` decide exactly."""
    mentions = resolve_dates(text, published)
    if not mentions:
        return {"dates": ""}  # read, and none: unlike a chunk stored before dates were read
    pairs = sorted({(date_int(m.first), date_int(m.last)) for m in mentions})
    return {"dates": ";".join(f"{a}-{b}" for a, b in pairs),
            "dates_first": min(a for a, _ in pairs), "dates_last": max(b for _, b in pairs)}


def _to_article(aid: str, meta: dict[str, Any], text: str) -> StoredArticle:
    published = meta.get("published")
    authors = meta.get("authors") or []
    return StoredArticle(
        id=aid,
        title=meta.get("title", ""),
        text=text,
        version=meta.get("version", ""),
        chunks=int(meta.get("chunks", 0)),
        url=meta.get("source_url") or meta.get("url"),
        paths=list(meta.get("paths") or []),
        published=date.fromisoformat(published) if published else None,
        authors=list(authors),
        outlet=meta.get("outlet"),
        ingested_at=meta.get("ingested_at"),
        story=meta.get("story"),
        feed_summary=bool(meta.get("feed_summary")),
    )

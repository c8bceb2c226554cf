"""The store of articles: one Chroma collection of chunks, one of articles.

`ArticleStore` opens them (the same code serves the embedded `PersistentClient` and a
`chroma run` server, `CHROMA_HOST`), checks they were built with the configured
embedding model, keeps up with other processes' writes (`generation`, `sync`) and holds
the writer lock (`writing`). What it reads is in `rag.store.reads`; how it writes, so
that a writer killed at any point leaves nothing half-written once the next writer has
recovered, in `rag.store.writes`; the records' metadata in `rag.store.metadata`.
Readers never wait; `sync` makes them see other processes' writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from chromadb.api.models.Collection import Collection

from rag.settings import Settings
from rag.store.connection import (
    Connection,
    StoreError,
    connect,
    location,
    runaway_indexes,
    runaway_message,
    store_error,
)
from rag.store.embeddings import EmbedSpec, LlamaIndexEmbeddingFunction, get_embed_model
from rag.store.keyword_table import KeywordTable
from rag.store.lock import FileWriterLock, LeaseWriterLock, Waiting, WriterBusyError
from rag.store.metadata import chunk_dates, date_int
from rag.store.reads import ArticleReads
from rag.store.writes import ArticleWrites

ARTICLES_SUFFIX = "-articles"
WRITING = "writing"  # chunk collection metadata: who is mid-write ("": nobody)
# chunk_dates and date_int: their home is rag.store.metadata; rag.answer.retrieve
# imports them from here
__all__ = ["ArticleStore", "EmbeddingMismatchError", "StoreError", "WriterBusyError",
           "chunk_dates", "date_int"]


class EmbeddingMismatchError(StoreError):
    pass


class ArticleStore(ArticleReads, ArticleWrites):
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
        self._has_chunks: tuple[str, bool] = ("", False)  # (generation, any chunk then)
        self.keywords = KeywordTable.of(settings)  # kept by every write (rag.store.writes)
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
            meta[WRITING] = ""  # (ignored where the collection exists)
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
                    self.keywords.clear()  # a new store holds nothing, nor does its table
                    self.keywords.set_generation(self.generation())

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
        # Known per generation (every write changes it): asking Chroma reads every row,
        # `count()` and `get(limit=1)` alike (75 ms at 600k chunks, measured), and each
        # question asks several times.
        stamp = self.conn.seen
        if not self.exists:
            return False
        if self._has_chunks[0] != stamp or not stamp:
            self._has_chunks = (stamp, self._guard("counting", self.chunks.count) > 0)
        return self._has_chunks[1]

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
        meta = self._stamps()
        return "" if meta is None else str(meta.get("generation", "")) or "created"

    def write_under_way(self) -> bool:
        """Whether a write began and did not finish (its writer alive or dead), or the
        store was last written by a version of this program that did not say."""
        meta = self._stamps()
        return meta is not None and meta.get(WRITING, True) != ""

    def _stamps(self) -> dict[str, Any] | None:
        """The chunk collection's metadata, read fresh (None: no collection)."""
        try:
            collection = self.client.get_collection(self.name, embedding_function=None)
        except Exception as exc:  # not created yet, or dropped by another process
            if "does not exist" in str(exc) or type(exc).__name__ == "NotFoundError":
                return None
            raise store_error(exc, self.location, "reading it") from exc
        return dict(collection.metadata or {})

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
                on_wait: Waiting | None = None, damaged_ok: bool = False) -> Iterator[None]:
        """Hold the store's writer lock (re-entrant within a thread). On first entry,
        catch up with other writers, then roll back what a dead writer left half-written:
        while we hold the lock no live writer can be mid-write. `wait`: seconds to wait
        for another writer (None: as long as it takes), then WriterBusyError. A store
        whose vector index runs away (`runaway_indexes`) is refused (StoreError) unless
        `damaged_ok` (dropping it)."""
        with self.lock.hold(what, wait, on_wait) as outermost:
            if outermost:
                runaway = [] if damaged_ok else runaway_indexes(self.settings)
                if runaway:  # each write would grow it further, until the disk is full
                    raise StoreError(runaway_message(self.location, runaway))
                self._guard("finishing a rebuild", self._finish_rebuild)
                self.sync()
                self.recovered += self._recover()
                if self.exists and self.keywords.generation != self.generation():
                    # never built, or changed by a writer that does not keep it
                    self._guard("bringing its keyword index into step",
                                self.reconcile_keywords)
            yield

    def _bump_generation(self, writing: bool = False) -> None:
        """Stamp a new generation on the chunk collection: before and after each write of
        ours. A keyword table in step before stays in step: our writes keep it (a crash
        between the two stamps leaves it behind, and the next writer brings it into step).
        `writing`: the stamp before a write also says a write is under way (`WRITING`),
        and the one after says none is, so recovery looks for half-written records only
        after a writer died between the two (the look reads every record's metadata)."""
        meta = {k: v for k, v in (self._stamps() or {}).items() if not k.startswith("hnsw:")}
        in_step = self.keywords.generation == (str(meta.get("generation", "")) or "created")
        stamp = uuid.uuid4().hex[:12]
        self.chunks.modify(metadata={**meta, "generation": stamp,
                                     WRITING: self._writer_name() if writing else ""})
        self.conn.seen = stamp  # our own write: nothing to reopen for
        if in_step:
            self.keywords.set_generation(stamp)

    def drop(self) -> None:
        """Delete both collections (`python -m ingest drop`)."""
        with self.writing("drop", damaged_ok=True):  # dropping is the way out
            for name in (self.name, self.name + ARTICLES_SUFFIX):
                if name in {c.name for c in self.client.list_collections()}:
                    self.client.delete_collection(name)
            self._chunks = self._articles = None
            self.conn.seen = ""
            self.keywords.clear()


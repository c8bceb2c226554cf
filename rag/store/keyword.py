"""The BM25 keyword index over all chunks, persisted beside the store.

Contract: `KeywordIndex.of(store)` is the one index object for a store in a process;
`ensure` and `retriever` use it. The index is rebuilt only when the store's
generation stamp changed since it was built, and only by a process that searches it
(never by the writer): a one-shot one (`rag ask`, evaluation) builds before it
answers; a long-running one (the app,
`background = True`) answers from the build it has while a thread makes the new one,
and drops that build's hits the store no longer holds, so a removed or replaced
article is never cited. Each build on disk is a folder of its own,
`<collection>@<stamp>.<random>`, renamed into place; `<collection>.current` names the
live one and is replaced atomically, so a search loads the old index or the new, never
half of one.

Why the searcher, not the writer, rebuilds: docs/decisions/keyword-index.md.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import QueryBundle
from llama_index.retrievers.bm25 import BM25Retriever

from rag.store.articles import ArticleStore
from rag.store.expansion import expand_query
from rag.store.nodes import chunk_node

logger = logging.getLogger(__name__)
_STAMP = "newsrag_stamp.json"
_KEEP_OLD = 120.0  # seconds an old build stays, for a reader that is still loading it
# bm25s sets its own logger to DEBUG, so "Building index from IDs objects" would reach
# every console; its warnings still do.
logging.getLogger("bm25s").setLevel(logging.WARNING)

_INDEXES: dict[tuple[str, str], KeywordIndex] = {}
_INDEXES_LOCK = threading.Lock()


class KeywordIndex:
    def __init__(self, store: ArticleStore) -> None:
        self.store = store
        settings = store.settings
        where = (f"{settings.chroma_host}_{settings.chroma_port}" if settings.chroma_host
                 else "local")
        self.folder = Path(settings.data_dir) / "bm25" / where
        self.name = settings.collection
        self.pointer = self.folder / f"{self.name}.current"
        self._bm25: BM25Retriever | None = None
        self._stamp: dict[str, object] | None = None
        self._lock = threading.Lock()
        self.builds = 0  # how many times this object built the index (benchmarks, tests)
        self.background = False  # rebuild in a thread, answering from the old build meanwhile
        self.stale = False  # the build in use is older than the store
        self._rebuilding: threading.Thread | None = None

    @classmethod
    def of(cls, store: ArticleStore) -> KeywordIndex:
        """The one index object for this store in this process."""
        key = (str(Path(store.settings.data_dir).resolve()) + "|" + store.location, store.name)
        with _INDEXES_LOCK:
            index = _INDEXES.get(key)
            if index is None:
                index = _INDEXES[key] = cls(store)
            return index

    @property
    def path(self) -> Path:
        """The live build's folder (or where it would be)."""
        try:
            return self.folder / self.pointer.read_text().strip()
        except OSError:
            return self.folder / self.name

    def _current_stamp(self) -> dict[str, object]:
        return {"generation": self.store.generation(), "chunks": self.store.chunks.count()}

    def ensure(self) -> BM25Retriever | None:
        """The index for the store as it is now: in memory, else from disk, else built.
        In the background mode, an older build while the new one is made."""
        return self._ensure()[0]

    def _ensure(self) -> tuple[BM25Retriever | None, bool]:
        """The build to use, and whether it is older than the store (decided together:
        a rebuild may finish between two separate looks)."""
        if not self.store.exists:
            return None, False
        stamp = self._current_stamp()
        with self._lock:
            if self._bm25 is not None and self._stamp == stamp:
                return self._bm25, False
            if stamp["chunks"] == 0:
                self._bm25, self._stamp, self.stale = None, stamp, False
                return None, False
            loaded = self._load(stamp)
            if loaded is None and self.background:
                old = self._bm25 or self._load(None)
                if old is not None:
                    self._bm25, self.stale = old, True
                    self._rebuild_later()
                    return old, True
            self._bm25 = loaded or self._build(stamp)
            self._stamp, self.stale = stamp, False
            return self._bm25, False

    def refresh(self) -> None:
        """Bring the index up to date now, whatever the mode (`check --repair`)."""
        background, self.background = self.background, False
        try:
            self.ensure()
        finally:
            self.background = background

    def _rebuild_later(self) -> None:
        if self._rebuilding is not None and self._rebuilding.is_alive():
            return
        self._rebuilding = threading.Thread(target=self._rebuild, name="keyword-rebuild",
                                            daemon=True)
        self._rebuilding.start()

    def _rebuild(self) -> None:
        try:
            stamp = self._current_stamp()
            bm25 = self._build(stamp)  # outside the lock: questions go on meanwhile
        except Exception:  # the old build keeps serving; the next question tries again
            logger.warning("rebuilding the keyword index failed", exc_info=True)
            return
        with self._lock:
            self._bm25, self._stamp = bm25, stamp
            self.stale = False  # if the store moved on meanwhile, the next ensure sees it
        logger.info("keyword index rebuilt (%s chunks)", stamp["chunks"])

    def wait_for_rebuild(self, timeout: float | None = None) -> None:
        """Tests and benchmarks: let a background rebuild finish."""
        thread = self._rebuilding
        if thread is not None:
            thread.join(timeout)

    def is_current(self) -> bool:
        """Whether the saved index matches the store as it is now (`ingest check`)."""
        if not self.store.has_chunks():
            return True
        return _saved_stamp(self.path) == self._current_stamp()

    def _load(self, stamp: dict[str, object] | None) -> BM25Retriever | None:
        """The saved build for `stamp`, or with None the newest saved build of any."""
        for _ in range(2):  # a builder may swap the pointer between our two reads
            path = self.path
            try:
                saved = _saved_stamp(path)
                if saved is None or (stamp is not None and saved != stamp):
                    return None
                return BM25Retriever.from_persist_dir(str(path), show_progress=False)
            except (OSError, ValueError, KeyError):
                continue
        return None

    def _build(self, stamp: dict[str, object]) -> BM25Retriever:
        nodes = [chunk_node(r.pop("id"), r.pop("text"), r) for r in self.store.chunk_records()]
        # k above the corpus size makes llama-index warn on every small library
        bm25 = BM25Retriever(nodes=nodes, similarity_top_k=min(10, len(nodes)))
        self.builds += 1
        try:
            self._save(bm25, stamp)
        except OSError:  # a read-only or full disk: answer from memory, say why in the log
            logger.warning("could not save the keyword index in %s", self.folder,
                           exc_info=True)
        return bm25

    def _save(self, bm25: BM25Retriever, stamp: dict[str, object]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.name}.tmp-", dir=self.folder))
        try:
            bm25.persist(str(tmp), show_progress=False)
            (tmp / _STAMP).write_text(json.dumps(stamp))
            final = f"{self.name}@{str(stamp['generation'])[:12]}.{uuid.uuid4().hex[:8]}"
            tmp.rename(self.folder / final)
            pointer_tmp = self.folder / f".{self.name}.current.{uuid.uuid4().hex[:8]}"
            pointer_tmp.write_text(final)
            os.replace(pointer_tmp, self.pointer)  # the atomic switch
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._sweep(keep=final)

    def _sweep(self, keep: str) -> None:
        """Remove older builds (and temporaries of builders that died) once no reader
        can still be loading them."""
        old = time.time() - _KEEP_OLD
        for entry in self.folder.iterdir():
            name = entry.name
            # ("@" is never in a collection name; the bare name and .tmp: an earlier layout)
            ours = name.startswith((f"{self.name}@", f".{self.name}.tmp-")) or name in (
                self.name, f"{self.name}.tmp")
            if not ours or name == keep or entry == self.pointer:
                continue
            try:
                if entry.is_dir() and entry.stat().st_mtime < old:
                    shutil.rmtree(entry, ignore_errors=True)
            except OSError:
                continue

    def retriever(self, top_k: int, filters: object = None, expand: bool = False
                  ) -> BaseRetriever:
        """A BM25 retriever for one query, masked to the filters (no re-indexing)."""
        base, stale = self._ensure()
        if base is None:
            return _Empty()
        mask = None
        if filters:
            mask = [int(filters.match(doc)) for doc in base.corpus]  # type: ignore[attr-defined]
            if not any(mask):
                return _Empty()
        retriever = _Positive(existing_bm25=base.bm25,
                              # a stale build: fetch more, some hits may be gone
                              similarity_top_k=max(1, min(top_k * (2 if stale else 1),
                                                          len(base.corpus))),
                              corpus_weight_mask=mask)
        retriever.corpus = base.corpus  # a fresh build keeps its corpus on the retriever only
        retriever.expand = expand
        if stale:
            retriever.live, retriever.want = self.store.existing_chunks, top_k
        return retriever


def _saved_stamp(path: Path) -> dict[str, object] | None:
    """The stamp a saved build was made for (None: no readable build there)."""
    try:
        return json.loads((path / _STAMP).read_text())
    except (OSError, ValueError):
        return None


class _Positive(BM25Retriever):
    """BM25 hits with a zero score share no word with the query: drop them.

    With `expand`, the query also gets related news words (`rag.store.expansion`); that
    list is fused with the plain one, so the user's own rare words keep their weight.
    """

    expand: bool = False
    live: Callable[[list[str]], set[str]] | None = None  # a stale build: which ids still exist
    want: int = 0

    def _retrieve(self, query_bundle):  # noqa: ANN001, ANN202 - llama-index signature
        if self.expand:
            query_bundle = QueryBundle(expand_query(query_bundle.query_str))
        hits = [h for h in super()._retrieve(query_bundle) if (h.score or 0.0) > 0.0]
        if self.live is not None and hits:
            # A chunk id names its article's version, so one that still exists still
            # has the text this build holds; a removed or replaced one is gone.
            alive = self.live([h.node.node_id for h in hits])
            hits = [h for h in hits if h.node.node_id in alive][:self.want]
        return hits


class _Empty(BaseRetriever):
    def _retrieve(self, query_bundle):  # noqa: ANN001, ANN202 - llama-index signature
        return []

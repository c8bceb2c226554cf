"""The BM25 keyword index over all chunks: the store's keyword table, searched.

Contract: `KeywordIndex.of(store)` is the one index object for a store in a process;
`ensure` and `retriever` use it. The table (`rag.store.keyword_table`, a SQLite file
beside the store) is changed by every write by that write's chunks, inside the store's crash-safe
write protocol (`rag.store.writes`), so a search never rebuilds it: an article is found
by its words as soon as its write returns, and a removed one is forgotten before its
chunks are deleted (the table never holds a chunk the store does not).

A search finds the table out of step with the store only when it was never built (a
store made before it existed: built once, here, under the writer lock), or when a
writer that does not keep it (an older version of this program, another machine's
process against a shared Chroma server) or a dead one changed the store: then whoever
holds the writer lock next brings it into step by the difference of chunk ids
(`ArticleStore.reconcile_keywords`). A long-running process (the app: `background = True`) does
that in a thread, answering from the table as it is meanwhile.

Why: docs/decisions/keyword-index.md.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle

from rag.store.articles import ArticleStore, StoreError
from rag.store.expansion import expand_query
from rag.store.keyword_table import KeywordTable
from rag.store.lock import WriterBusyError
from rag.store.nodes import chunk_node

logger = logging.getLogger(__name__)

_INDEXES: dict[tuple[str, str], KeywordIndex] = {}
_INDEXES_LOCK = threading.Lock()


class KeywordIndex:
    def __init__(self, store: ArticleStore) -> None:
        self.store = store
        self.name = store.settings.collection
        self.builds = 0  # how many times this object brought the table into step whole
        self.background = False  # catch up in a thread, answering from the table meanwhile
        self._lock = threading.Lock()
        self._catching_up: threading.Thread | None = None

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
    def table(self) -> KeywordTable:
        return self.store.keywords

    @property
    def path(self) -> Path:
        return self.table.path

    def is_current(self) -> bool:
        """Whether the table is in step with the store as it is now (`ingest check`)."""
        if not self.store.has_chunks():
            return True
        return self.table.generation == self.store.generation()

    def ensure(self) -> KeywordTable | None:
        """The keyword table for the store as it is now (None: nothing stored). Out of
        step: brought into step first (never built: waiting for the writer lock; else
        only if no writer holds it, as a writer keeps it itself); in the background
        mode a thread does that and the table answers as it is meanwhile."""
        if not self.store.has_chunks():
            return None
        try:
            if self.table.generation != self.store.generation():
                never = self.table.generation is None or self.table.count() == 0
                if self.background:
                    self._catch_up_later(None if never else 0.0)
                else:
                    self._catch_up(None if never else 0.0)
            return self.table
        except (OSError, sqlite3.Error, StoreError):  # unwritable: vectors alone answer
            logger.warning("the keyword index at %s cannot be used", self.table.path,
                           exc_info=True)
            return None

    def refresh(self) -> None:
        """Bring the table into step now, whatever the mode (`check --repair`)."""
        self._catch_up(None)

    def _catch_up(self, wait: float | None) -> None:
        with self._lock:
            started = time.perf_counter()
            try:
                # taking the lock brings the table into step (`ArticleStore.writing`)
                with self.store.writing("keyword index", wait):
                    pass
            except WriterBusyError:  # a writer is at work: it keeps the table itself
                return
            self.builds += 1
            logger.info("keyword index brought into step in %.1f s (%d chunks)",
                        time.perf_counter() - started, self.table.count())

    def _catch_up_later(self, wait: float | None) -> None:
        if self._catching_up is not None and self._catching_up.is_alive():
            return

        def run() -> None:
            try:
                self._catch_up(wait)
            except Exception:  # the table answers as it is; the next question tries again
                logger.warning("bringing the keyword index into step failed", exc_info=True)

        self._catching_up = threading.Thread(target=run, name="keyword-catch-up", daemon=True)
        self._catching_up.start()

    def wait_for_rebuild(self, timeout: float | None = None) -> None:
        """Tests and benchmarks: let a background catch-up finish."""
        thread = self._catching_up
        if thread is not None:
            thread.join(timeout)

    def retriever(self, top_k: int, filters: Any = None, expand: bool = False  # noqa: ANN401
                  ) -> BaseRetriever:
        """A BM25 retriever for one query, restricted to the filters."""
        table = self.ensure()
        if table is None:
            return _Empty()
        return _Keyword(table, max(1, top_k), filters.match if filters else None, expand)


class _Keyword(BaseRetriever):
    """BM25 hits (score > 0: a chunk sharing no word with the query is no hit).

    With `expand`, the query also gets related news words (`rag.store.expansion`); that
    list is fused with the plain one, so the user's own rare words keep their weight.
    """

    def __init__(self, table: KeywordTable, top_k: int, keep: Any, expand: bool) -> None:  # noqa: ANN401
        super().__init__()
        self.table, self.top_k, self.keep, self.expand = table, top_k, keep, expand

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        query = query_bundle.query_str
        if self.expand:
            query = expand_query(query)
        return [NodeWithScore(node=chunk_node(cid, text, meta), score=score)
                for cid, text, meta, score in self.table.search(query, self.top_k, self.keep)]


class _Empty(BaseRetriever):
    def _retrieve(self, query_bundle):  # noqa: ANN001, ANN202 - llama-index signature
        return []

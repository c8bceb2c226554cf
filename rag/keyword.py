"""The BM25 keyword index over all chunks, persisted beside the store.

It is rebuilt only when the store changed since it was built (the store bumps a
generation stamp on every write), never per query. Ingest and remove refresh it
at once, so the first question after them is not slowed either.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import QueryBundle
from llama_index.retrievers.bm25 import BM25Retriever

from rag.expansion import expand_query
from rag.nodes import chunk_node
from rag.store import ArticleStore

_STAMP = "newsrag_stamp.json"
# bm25s sets its own logger to DEBUG, so "Building index from IDs objects" would reach
# every console; its warnings still do.
logging.getLogger("bm25s").setLevel(logging.WARNING)


class KeywordIndex:
    def __init__(self, store: ArticleStore) -> None:
        self.store = store
        settings = store.settings
        where = (f"{settings.chroma_host}_{settings.chroma_port}" if settings.chroma_host
                 else "local")
        self.path = Path(settings.data_dir) / "bm25" / where / settings.collection
        self._bm25: BM25Retriever | None = None
        self._stamp: dict[str, object] | None = None
        self._lock = threading.Lock()
        self.builds = 0  # how many times this process built the index (benchmarks, tests)

    def _current_stamp(self) -> dict[str, object]:
        return {"generation": self.store.generation(), "chunks": self.store.chunks.count()}

    def ensure(self) -> BM25Retriever | None:
        """The index for the store as it is now: in memory, else from disk, else built."""
        if not self.store.exists:
            return None
        stamp = self._current_stamp()
        with self._lock:
            if self._bm25 is not None and self._stamp == stamp:
                return self._bm25
            if stamp["chunks"] == 0:
                self._bm25, self._stamp = None, stamp
                return None
            loaded = self._load(stamp)
            self._bm25 = loaded or self._build(stamp)
            self._stamp = stamp
            return self._bm25

    def refresh(self) -> None:
        self.ensure()

    def _load(self, stamp: dict[str, object]) -> BM25Retriever | None:
        try:
            saved = json.loads((self.path / _STAMP).read_text())
            if saved != stamp:
                return None
            return BM25Retriever.from_persist_dir(str(self.path), show_progress=False)
        except (OSError, ValueError, KeyError):
            return None

    def _build(self, stamp: dict[str, object]) -> BM25Retriever:
        nodes = [chunk_node(r.pop("id"), r.pop("text"), r) for r in self.store.chunk_records()]
        bm25 = BM25Retriever(nodes=nodes, similarity_top_k=10)
        self.builds += 1
        # Write beside, then swap, so a reader never loads half an index.
        tmp = self.path.with_name(self.path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        bm25.persist(str(tmp), show_progress=False)
        (tmp / _STAMP).write_text(json.dumps(stamp))
        shutil.rmtree(self.path, ignore_errors=True)
        tmp.rename(self.path)
        return bm25

    def retriever(self, top_k: int, filters: object = None, expand: bool = False
                  ) -> BaseRetriever:
        """A BM25 retriever for one query, masked to the filters (no re-indexing)."""
        base = self.ensure()
        if base is None:
            return _Empty()
        mask = None
        if filters:
            mask = [int(filters.match(doc)) for doc in base.corpus]  # type: ignore[attr-defined]
            if not any(mask):
                return _Empty()
        retriever = _Positive(existing_bm25=base.bm25, similarity_top_k=top_k,
                              corpus_weight_mask=mask)
        retriever.corpus = base.corpus  # a fresh build keeps its corpus on the retriever only
        retriever.expand = expand
        return retriever


class _Positive(BM25Retriever):
    """BM25 hits with a zero score share no word with the query: drop them.

    With `expand`, the query also gets related news words (`rag.expansion`); that
    list is fused with the plain one, so the user's own rare words keep their weight.
    """

    expand: bool = False

    def _retrieve(self, query_bundle):  # noqa: ANN001, ANN202 - llama-index signature
        if self.expand:
            query_bundle = QueryBundle(expand_query(query_bundle.query_str))
        return [h for h in super()._retrieve(query_bundle) if (h.score or 0.0) > 0.0]


class _Empty(BaseRetriever):
    def _retrieve(self, query_bundle):  # noqa: ANN001, ANN202 - llama-index signature
        return []

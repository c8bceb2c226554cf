"""Hybrid retrieval: Chroma vectors + persisted BM25, fused, filtered, diversified.

Both sides produce llama-index nodes built by `rag.store.nodes.chunk_node` from the same
chunk metadata, so `QueryFusionRetriever` can match them; it fuses by
`dist_based_score` by default (each list's scores rescaled by their mean and spread,
then summed), so a strong match on one side is not flattened to a rank.

The engine is given its retrieval (`Engine(retriever=...)`): a `RetrieverFactory`, a
retriever per `RetrievalMode`; `Retrievers` is the default (a `Retriever` per mode
over the store), `StaticRetriever` gives fixed passages (for tests, as httpx's
`MockTransport` answers requests). Contract: passages come best first, at most
`top_k`, each matching `filters`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.llms import MockLLM
from llama_index.core.retrievers import QueryFusionRetriever
from llama_index.core.retrievers.fusion_retriever import FUSION_MODES
from llama_index.core.schema import NodeWithScore, QueryBundle

from rag.dates.parse import DateFilter
from rag.errors import UsageError
from rag.store.articles import ArticleStore, chunk_dates, date_int
from rag.store.expansion import expand_query
from rag.store.keyword import KeywordIndex
from rag.store.nodes import chunk_node
from rag.types import Passage, RetrievalMode


@dataclass
class Filters:
    """Restrict retrieval to some articles, outlets, a published-date range, or a range
    of days the passage is about (`when_*`: published then, or a date it mentions, read
    against its publication date, falls in it; the filter a question's dates become;
    undated passages naming no date, and those stored before dates were read, are kept,
    as nothing rules them out)."""

    article_ids: list[str] = field(default_factory=list)
    exclude_ids: list[str] = field(default_factory=list)  # articles left out of the search
    outlets: list[str] = field(default_factory=list)
    date_from: date | None = None
    date_to: date | None = None
    when_from: date | None = None
    when_to: date | None = None
    as_of: date | None = None  # nothing published after it (undated articles stay)

    def __bool__(self) -> bool:
        return bool(self.article_ids or self.exclude_ids or self.outlets or self.date_from
                    or self.date_to or self.when_from or self.when_to or self.as_of)

    def where(self) -> dict[str, Any] | None:
        """The same restriction as a Chroma `where` clause."""
        clauses: list[dict[str, Any]] = []
        if self.article_ids:
            clauses.append({"article_id": {"$in": list(self.article_ids)}})
        if self.exclude_ids:
            clauses.append({"article_id": {"$nin": list(self.exclude_ids)}})
        if self.outlets:
            clauses.append({"outlet": {"$in": list(self.outlets)}})
        if self.date_from:
            clauses.append({"published_int": {"$gte": date_int(self.date_from)}})
        if self.date_to:
            clauses.append({"published_int": {"$lte": date_int(self.date_to)}})
        if self.when_from or self.when_to:
            lo = date_int(self.when_from) if self.when_from else 0
            hi = date_int(self.when_to) if self.when_to else 99991231
            clauses.append({"$or": [
                {"$and": [{"published_int": {"$gte": lo}}, {"published_int": {"$lte": hi}}]},
                {"$and": [{"dates_first": {"$lte": hi}}, {"dates_last": {"$gte": lo}}]},
            ]})
        # (`as_of` has no clause: Chroma cannot ask for a missing date; `match` decides.)
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def match(self, meta: dict[str, Any]) -> bool:
        if self.article_ids and meta.get("article_id") not in self.article_ids:
            return False
        if meta.get("article_id") in self.exclude_ids:
            return False
        if self.outlets and meta.get("outlet") not in self.outlets:
            return False
        published = meta.get("published_int")
        if (self.date_from or self.date_to) and published is None:
            return False
        if self.date_from and published < date_int(self.date_from):
            return False
        if self.date_to and published > date_int(self.date_to):
            return False
        if self.as_of and published is not None and published > date_int(self.as_of):
            return False
        return not (self.when_from or self.when_to) or self._about_when(meta)

    def _about_when(self, meta: dict[str, Any]) -> bool:
        """Published in the range or speaking of a day in it. A passage with no date at
        all (an undated article that names none) cannot be ruled out, so it stays."""
        published = meta.get("published_int")
        if "dates" not in meta or (published is None and not meta["dates"]):
            return True  # stored before dates were read, or nothing dates it
        return self.dated_within(meta)

    def dated_within(self, meta: dict[str, Any]) -> bool:
        """Published in the `when_*` range or speaking of a day in it: kept for its
        dates, unlike a passage nothing dates, which is kept because nothing rules it
        out (an answer may take the range's words as said only of the first kind)."""
        lo = date_int(self.when_from) if self.when_from else 0
        hi = date_int(self.when_to) if self.when_to else 99991231
        published = meta.get("published_int")
        if published is not None and lo <= published <= hi:
            return True
        # A mention much wider than the range asked ("in May" for "last week") says too
        # little about it: it counts only when it is at most twice as long.
        span = (_day(hi) - _day(lo)).days if self.when_from and self.when_to else None
        for pair in str(meta.get("dates") or "").split(";"):
            first, _, last = pair.partition("-")
            if not (first and last and int(first) <= hi and int(last) >= lo):
                continue
            if span is None or (_day(int(last)) - _day(int(first))).days <= 2 * span + 1:
                return True
        return False


def dated_within(window: DateFilter, passage: Passage) -> bool:
    """Whether a question's date filter kept this passage for its dates (published in
    the range, or speaking of a day in it), read as ingest read them."""
    return Filters(when_from=window.first, when_to=window.last).dated_within(
        passage_meta(passage))


def passage_meta(passage: Passage) -> dict[str, Any]:
    """The chunk metadata `Filters.match` reads, for a passage: as ingest stored it
    (its dates read against its publication)."""
    published = date.fromisoformat(passage.published) if passage.published else None
    return {"article_id": passage.article_id, "outlet": passage.outlet,
            "published_int": date_int(published) if published else None,
            **chunk_dates(passage.text, published)}


def _day(value: int) -> date:
    return date(value // 10000, value // 100 % 100, value % 100)


def passage_from_node(hit: NodeWithScore) -> Passage:
    meta = hit.node.metadata
    return Passage(
        chunk_id=hit.node.node_id, article_id=meta["article_id"], text=hit.node.get_content(),
        start=int(meta["start"]), end=int(meta["end"]), score=float(hit.score or 0.0),
        title=meta.get("title", ""), url=meta.get("url"), path=meta.get("path"),
        published=meta.get("published"), outlet=meta.get("outlet"),
        paragraph=int(meta.get("paragraph", 0)), story=meta.get("story"),
    )


class DenseRetriever(BaseRetriever):
    """Nearest chunks in Chroma.

    Chroma is asked for ids and distances only; texts and metadata come from the
    keyword table (`ArticleStore.chunk_texts`: Chroma's own hydration of 320 hits took
    ~400 ms at 26k chunks, the table's read ~5 ms). A `where` filter costs ~40x an
    unfiltered query, so filters are first applied to a wide unfiltered result, then a
    wider one; Chroma filters only when both leave too few.
    """

    def __init__(self, store: ArticleStore, top_k: int, filters: Filters | None = None) -> None:
        super().__init__()
        self.store, self.top_k, self.filters = store, top_k, filters or Filters()

    def _nearest(self, vector: list[float], n: int, where: dict[str, Any] | None
                 ) -> list[tuple[str, float]]:
        got = self.store.chunks.query(query_embeddings=[vector], n_results=n, where=where,
                                      include=["distances"])
        return list(zip(got["ids"][0], got["distances"][0], strict=True))

    def _nodes(self, hits: list[tuple[str, float]], keep: Filters | None,
               rows: dict[str, tuple[str, dict[str, Any]]]) -> list[NodeWithScore]:
        """The first `top_k` of `hits` (nearest first) that `keep` accepts, as nodes.
        Rows are read in batches, in order, until enough are kept (into `rows`, which
        the next, wider try reuses): reading and building every one of a wide result's
        1,600 hits was most of a filtered query (measured: 120 of 240 ms at 100k chunks)."""
        out: list[NodeWithScore] = []
        step = max(self.top_k * 4, 100)
        for start in range(0, len(hits), step):
            part = hits[start:start + step]
            rows.update(self.store.chunk_texts([i for i, _ in part if i not in rows]))
            for cid, distance in part:
                if cid not in rows or (keep is not None and not keep.match(rows[cid][1])):
                    continue
                text, meta = rows[cid]
                # Metadata keys sorted: a dense hit's node then never has the hash of the
                # keyword side's node for the same chunk (written order), as when Chroma
                # hydrated it. llama-index's fusion merges hits by that hash; merging the
                # two sides' hits of a chunk is not what the hybrid retriever was tuned
                # and measured with (it lowered bbc_qa_test hybrid hit@1 from 0.760 to
                # 0.740), so it waits for its own dev/test measurement
                # (docs/decisions/keyword-index.md).
                out.append(NodeWithScore(node=chunk_node(cid, text, dict(sorted(meta.items()))),
                                         score=1.0 - distance))
                if len(out) >= self.top_k:
                    return out
        return out

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        vector = query_bundle.embedding or self.store.embed_model.get_query_embedding(
            query_bundle.query_str)
        # (No `count()` to bound n: Chroma returns what it holds when asked for more,
        # and its count reads every row.)
        rows: dict[str, tuple[str, dict[str, Any]]] = {}
        if not self.filters:
            return self._nodes(self._nearest(vector, self.top_k, None), None, rows)
        for wide in (max(self.top_k * 10, 100), max(self.top_k * 50, 1000)):
            hits = self._nearest(vector, wide, None)
            kept = self._nodes(hits, self.filters, rows)
            if len(kept) >= self.top_k or len(hits) < wide:  # enough, or every chunk seen
                return kept
        return self._nodes(self._nearest(vector, self.top_k, self.filters.where()), None, {})


class Retriever:
    """Question in, ranked passages out, in `hybrid`, `dense` or `bm25` mode."""

    def __init__(self, store: ArticleStore, mode: RetrievalMode | str = RetrievalMode.HYBRID,
                 keyword: KeywordIndex | None = None, fusion: str = "dist_based_score") -> None:
        try:
            self.mode = RetrievalMode(mode)
        except ValueError:
            raise UsageError("retrieval mode must be one of "
                             + ", ".join(m.value for m in RetrievalMode)) from None
        self.store, self.fusion = store, fusion
        self.keyword = keyword or KeywordIndex.of(store)

    def retrieve(self, query: str, top_k: int = 5, filters: Filters | None = None,
                 per_article: int | None = None) -> list[Passage]:
        """Top passages, at most `per_article` (default: half) from one article while
        others qualify."""
        filters = filters or Filters()
        if not self.store.has_chunks():
            return []
        pool = max(top_k * 4, 20)
        retrievers: list[BaseRetriever] = []
        if self.mode in (RetrievalMode.HYBRID, RetrievalMode.DENSE):
            retrievers.append(DenseRetriever(self.store, pool, filters))
        if self.mode in (RetrievalMode.HYBRID, RetrievalMode.BM25):
            retrievers.append(self.keyword.retriever(pool, filters))
            if expand_query(query) != query:
                retrievers.append(self.keyword.retriever(pool, filters, expand=True))
        if len(retrievers) == 1:
            hits = retrievers[0].retrieve(query)
        else:
            # MockLLM: with num_queries=1 the fusion retriever generates no queries, but
            # it still resolves an LLM at construction, and no default one exists offline.
            fusion = QueryFusionRetriever(
                retrievers, llm=MockLLM(), mode=FUSION_MODES(self.fusion),
                similarity_top_k=pool, num_queries=1, use_async=False,
            )
            hits = fusion.retrieve(query)
        passages = [passage_from_node(h) for h in hits if filters.match(h.node.metadata)]
        return diversify(passages, top_k, per_article or max(2, top_k // 2))


class PassageRetriever(Protocol):
    """What the engine asks of a retriever."""

    def retrieve(self, query: str, top_k: int = 5, filters: Filters | None = None
                 ) -> list[Passage]:
        """At most `top_k` passages matching `filters`, best first."""
        ...


class RetrieverFactory(Protocol):
    """A retriever per mode: the engine asks for the question's mode, and for a dense
    one to fetch the passages of an article's updated version."""

    def __call__(self, mode: RetrievalMode) -> PassageRetriever: ...


class Retrievers:
    """The default `RetrieverFactory`: a `Retriever` per mode over one store and keyword
    index, each made the first time it is asked for."""

    def __init__(self, store: ArticleStore, keyword: KeywordIndex | None = None) -> None:
        self.store = store
        self.keyword = keyword or KeywordIndex.of(store)
        self._by_mode: dict[RetrievalMode, Retriever] = {}

    def __call__(self, mode: RetrievalMode) -> Retriever:
        if mode not in self._by_mode:
            self._by_mode[mode] = Retriever(self.store, mode, self.keyword)
        return self._by_mode[mode]


class StaticRetriever:
    """Retrieval that gives fixed passages, and no store or index behind it: for tests.

    Every query gets `passages`, or its own from `by_query`; in the order given, those
    `filters` match (read as ingest would have stored them: `passage_meta`), at most
    `top_k`. It is its own factory, the retriever of every mode; the queries it was
    asked are kept in `asked`."""

    def __init__(self, passages: Sequence[Passage] = (),
                 by_query: Mapping[str, Sequence[Passage]] | None = None) -> None:
        self.passages = list(passages)
        self.by_query = dict(by_query or {})
        self.asked: list[str] = []

    def __call__(self, mode: RetrievalMode) -> StaticRetriever:
        return self

    def retrieve(self, query: str, top_k: int = 5, filters: Filters | None = None
                 ) -> list[Passage]:
        self.asked.append(query)
        given = self.by_query.get(query, self.passages)
        return [p for p in given if not filters or filters.match(passage_meta(p))][:top_k]


def diversify(passages: list[Passage], top_k: int, per_article: int,
              margin: float = 0.75) -> list[Passage]:
    """Rank order, but at most `per_article` passages of one story (an article and its
    copies count once) while passages of other stories score within `margin` of the
    one held back; past that, relevance wins (one article may be all that answers)."""
    chosen: list[Passage] = []
    held: list[Passage] = []
    counts: dict[str, int] = {}
    for passage in passages:
        while held and passage.score < margin * held[0].score and len(chosen) < top_k:
            chosen.append(held.pop(0))
        if len(chosen) == top_k:
            break
        key = passage.story or passage.article_id
        if counts.get(key, 0) < per_article:
            chosen.append(passage)
            counts[key] = counts.get(key, 0) + 1
        else:
            held.append(passage)
    return (chosen + held)[:top_k]

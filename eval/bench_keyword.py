"""The keyword index, old (bm25s, rebuilt whole) against new (the keyword table, updated),
side by side in one run over one store. Prints figures, asserts nothing.

    python -m eval.bench_keyword --data-dir data/eval --collection C \\
        --dataset eval/datasets/bbc_qa_dev.jsonl --corpus ../shared/corpora [--new 300]

- quality: article hit@1/5/10 and MRR of `bm25` and `hybrid` retrieval (top 10, the
  dense side shared) with each index, over the dataset's answerable questions;
- query latency p50/p95 of the keyword side alone (plain and expanded query, as the
  hybrid retriever asks it) with each;
- update cost: the old index rebuilt whole over every chunk (what each store change
  cost its next reader), against the new table changed by `--new` articles' chunks
  added into a table of the rest, and removed again;
- migration: the real store's table built from Chroma (`reconcile_keywords`), as a
  store made before the table existed gets it on first use.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import QueryBundle
from llama_index.retrievers.bm25 import BM25Retriever

from eval import qa
from eval.scoring import resolve_gold
from rag.answer.retrieve import Retriever
from rag.settings import Settings
from rag.store.articles import ArticleStore
from rag.store.expansion import expand_query
from rag.store.keyword import KeywordIndex
from rag.store.keyword_table import KeywordTable
from rag.store.nodes import chunk_node


class OldKeyword:
    """The keyword index as it was before issue 29: one bm25s index over every chunk,
    built whole (`rag/store/keyword.py` at 6a48a6e, its stale-build paths left out)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        nodes = [chunk_node(r["id"], r["text"], {k: v for k, v in r.items()
                                                 if k not in ("id", "text")}) for r in records]
        self.base = BM25Retriever(nodes=nodes, similarity_top_k=min(10, len(nodes)))

    def retriever(self, top_k: int, filters: Any = None, expand: bool = False  # noqa: ANN401
                  ) -> BaseRetriever:
        mask = [int(filters.match(d)) for d in self.base.corpus] if filters else None
        r = _OldPositive(existing_bm25=self.base.bm25,
                         similarity_top_k=max(1, min(top_k, len(self.base.corpus))),
                         corpus_weight_mask=mask)
        r.corpus, r.expand = self.base.corpus, expand
        return r


class _OldPositive(BM25Retriever):
    expand: bool = False

    def _retrieve(self, query_bundle):  # noqa: ANN001, ANN202 - llama-index signature
        if self.expand:
            query_bundle = QueryBundle(expand_query(query_bundle.query_str))
        return [h for h in super()._retrieve(query_bundle) if (h.score or 0.0) > 0.0]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def quality(store: ArticleStore, keyword: Any, items: list[qa.QAItem],  # noqa: ANN401
            golds: dict[str, Any], mode: str) -> dict[str, float]:
    retriever = Retriever(store, mode, keyword)
    hits = defaultdict(float)
    n = 0
    for item in items:
        gold = golds.get(item.id)
        if gold is None or not gold.article_ids:
            continue
        n += 1
        ranked = list(dict.fromkeys(p.article_id for p in retriever.retrieve(item.question,
                                                                             top_k=10)))
        rank = next((i + 1 for i, a in enumerate(ranked) if a in gold.article_ids), None)
        for k in (1, 5, 10):
            hits[f"hit@{k}"] += bool(rank and rank <= k)
        hits["mrr"] += 1.0 / rank if rank else 0.0
    return {k: v / n for k, v in hits.items()} | {"n": n}


def latency(keyword: Any, questions: list[str]) -> tuple[float, float]:  # noqa: ANN401
    times = []
    for q in questions:
        started = time.perf_counter()
        keyword.retriever(40).retrieve(q)
        if expand_query(q) != q:
            keyword.retriever(40, expand=True).retrieve(q)
        times.append((time.perf_counter() - started) * 1000)
    return pct(times, 50), pct(times, 95)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.bench_keyword")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--new", type=int, default=300)
    args = parser.parse_args()
    settings = Settings(data_dir=args.data_dir, collection=args.collection)
    store = ArticleStore(settings)
    store.sync()
    records = store.chunk_records()
    articles = sorted({r["article_id"] for r in records})
    print(f"store: {len(articles)} articles, {len(records)} chunks")

    # migration: the store's own table, built from Chroma as on first use
    store.keywords.clear()
    store.keywords.set_generation(None)
    started = time.perf_counter()
    store.reconcile_keywords()  # (taking the writer lock already brings it into step)
    t_migrate = time.perf_counter() - started
    print(f"migration (table built from Chroma, {store.keywords.count()} chunks): "
          f"{t_migrate:6.1f} s")

    started = time.perf_counter()
    old = OldKeyword(records)
    t_old = time.perf_counter() - started
    print(f"old: bm25s index rebuilt whole:                {t_old:6.2f} s")

    new_ids = set(random.Random(29).sample(articles, min(args.new, len(articles) // 2)))
    rows = [(r["id"], r["text"], {k: v for k, v in r.items() if k not in ("id", "text")})
            for r in records]
    with tempfile.TemporaryDirectory() as tmp:
        table = KeywordTable(Path(tmp) / "k.sqlite")
        table.add([r for r in rows if r[2]["article_id"] not in new_ids])
        fresh = [r for r in rows if r[2]["article_id"] in new_ids]
        started = time.perf_counter()
        by_article = defaultdict(list)
        for r in fresh:
            by_article[r[2]["article_id"]].append(r)
        for aid in sorted(by_article):  # as a write pool of one article each: the worst case
            table.add(by_article[aid])
        t_add = time.perf_counter() - started
        started = time.perf_counter()
        table.add(fresh)  # held already: nothing to do (a re-write)
        started = time.perf_counter()
        for aid in sorted(by_article):
            table.remove_article(aid)
        t_remove = time.perf_counter() - started
        print(f"new: {len(by_article)} articles ({len(fresh)} chunks) added into a table of "
              f"the rest: {t_add:6.2f} s; removed again: {t_remove:6.2f} s")
        table.close()

    items = [i for i in qa.load(args.dataset) if i.answerable]
    golds = resolve_gold(items, store, args.corpus)
    new = KeywordIndex.of(store)
    questions = [i.question for i in items]
    for name, keyword in (("old", old), ("new", new)):
        latency(keyword, questions[:5])  # warm
        p50, p95 = latency(keyword, questions)
        print(f"{name}: keyword side p50 {p50:6.1f} ms, p95 {p95:6.1f} ms "
              f"({len(questions)} questions, plain + expanded)")
    for mode in ("bm25", "hybrid"):
        for name, keyword in (("old", old), ("new", new)):
            q = quality(store, keyword, items, golds, mode)
            print(f"{mode:6} {name}: " + "  ".join(
                f"{k} {v:.3f}" if k != "n" else f"n {int(v)}" for k, v in q.items()))


if __name__ == "__main__":
    main()

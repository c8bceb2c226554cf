"""Ingest and retrieval with a large store already there. Prints figures, asserts nothing.

    python -m eval.bench_scale [--articles 20000] [--new 300] [--queries 40]

The large store is synthesised: the BBC texts, re-titled and re-dated into as many
articles as asked, chunked as ingest chunks them, and written through the store's own
`write_articles` with the original chunks' vectors plus a little noise. That is what the
store holds after a real ingest, without embedding 80,000 chunks first (20 minutes
here). Then, side by side in one run:
- N new real articles ingested into an empty store and into the large one;
- retrieval p50/p95 (dense and hybrid) on the large store.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from eval.bench_growth import _copies, timed_ingest
from ingest.chunking import chunk_article, embedding_text
from ingest.pipeline import ingest, read_source
from ingest.sources import expand
from rag.connection import forget
from rag.models import Article
from rag.retrieval import Retriever
from rag.settings import PROJECT_ROOT, Settings, get_settings
from rag.store import ArticleStore

QUESTIONS = [
    "Why did the shares fall?", "What did the Bank of England decide about rates?",
    "Who won the match?", "What did the minister say about the election?",
    "How many jobs will be cut?", "What is the new mobile phone able to do?",
    "Why was the film award criticised?", "What happened to the oil price?",
]


def _sources(corpus: Path, settings: Settings) -> list[Article]:
    out = []
    for source in expand([str(corpus)]).sources:
        for _, item in read_source(source, settings):
            if isinstance(item, Article):
                out.append(item)
    return out


def _fill(store: ArticleStore, settings: Settings, originals: list[Article], n: int) -> int:
    """n articles made from the originals, with their chunks' vectors plus noise."""
    rng = np.random.default_rng(7)
    base: dict[str, np.ndarray] = {}
    written = 0
    pool: list = []
    for k in range(n):
        src = originals[k % len(originals)]
        article = Article(text=f"Filed {k}. {src.text}", title=f"{src.title} ({k})",
                          outlet="synthetic")
        chunks = chunk_article(article, settings)
        if src.id not in base:
            texts = [embedding_text(src, c) for c in chunk_article(src, settings)]
            base[src.id] = np.asarray(store.embed(texts), dtype=np.float32)
        vectors = base[src.id]
        rows = [vectors[min(i, len(vectors) - 1)] + rng.normal(0, 0.02, vectors.shape[1])
                for i in range(len(chunks))]
        rows = [(r / np.linalg.norm(r)).tolist() for r in rows]
        pool.append((article, chunks, rows, []))
        written += len(chunks)
        if len(pool) >= 50:
            store.write_articles(pool)
            pool = []
    if pool:
        store.write_articles(pool)
    return written


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.bench_scale")
    parser.add_argument("--articles", type=int, default=20000)
    parser.add_argument("--new", type=int, default=300)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--corpus", type=Path,
                        default=PROJECT_ROOT.parent / "shared" / "corpora" / "bbc")
    args = parser.parse_args()
    base = get_settings()
    with tempfile.TemporaryDirectory() as tmp:
        new = _copies(args.corpus, args.new, Path(tmp) / "new")
        empty = base.override(data_dir=Path(tmp) / "empty")
        t_empty, _ = timed_ingest(new, empty)
        forget(empty)

        large = base.override(data_dir=Path(tmp) / "large")
        store = ArticleStore(large)
        started = time.perf_counter()
        chunks = _fill(store, large, _sources(args.corpus, large), args.articles)
        t_fill = time.perf_counter() - started
        started = time.perf_counter()
        ingest(new, store, large, progress=False)
        t_large = time.perf_counter() - started
        held = store.chunks.count()
        rows = []
        for mode in ("dense", "hybrid"):
            retriever = Retriever(store, mode)
            retriever.retrieve(QUESTIONS[0], top_k=8)  # the keyword index builds here
            times = []
            for k in range(args.queries):
                started = time.perf_counter()
                retriever.retrieve(QUESTIONS[k % len(QUESTIONS)] + f" {k}", top_k=8)
                times.append((time.perf_counter() - started) * 1000)
            rows.append((mode, statistics.median(times), _p(times, 0.95)))
    print(f"cores: {os.cpu_count()}; synthetic store: {args.articles} articles, {chunks} chunks "
          f"written in {t_fill:.0f} s; {held} chunks after the new articles")
    print(f"{args.new} new articles into an empty store:  {t_empty:6.1f} s")
    print(f"{args.new} new articles into the large store: {t_large:6.1f} s "
          f"(ratio {t_large / t_empty:.2f})")
    for mode, p50, p95 in rows:
        print(f"retrieval {mode:<7} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  ({held} chunks)")


if __name__ == "__main__":
    main()

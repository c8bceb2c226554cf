"""Ingest and retrieval with a large store already there. Prints figures, asserts nothing.

    python -m eval.bench_scale [--articles 20000] [--new 300] [--queries 40] [--server]

The large store is synthesised: the BBC texts, re-titled and re-dated into as many
articles as asked, chunked as ingest chunks them, and written through the store's own
`write_articles` with the original chunks' vectors plus a little noise. That is what the
store holds after a real ingest, without embedding 80,000 chunks first (20 minutes
here). Then, side by side in one run:
- N new real articles ingested into an empty store and into the large one;
- what the next reader then waits for the keyword index (writes keep it: nothing);
- retrieval p50/p95 (dense and hybrid) on the large store.
With `--server`, the stores live in a `chroma run` server started on loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

from eval.bench_growth import _copies, timed_ingest
from eval.bench_ingest import BBC_CORPUS
from ingest.chunking import chunk_article, embedding_text
from ingest.pipeline import ingest, read_source
from ingest.sources import expand
from rag.answer.retrieve import Retriever
from rag.records import Article
from rag.settings import Settings, get_settings
from rag.store.articles import ArticleStore
from rag.store.connection import forget
from rag.store.keyword import KeywordIndex

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


@contextlib.contextmanager
def chroma_server(folder: Path, path: Path | None = None) -> Iterator[int]:
    """`chroma run` on a free loopback port, serving `path` (default `<folder>/db`;
    its log in `folder`); yields the port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    log = (folder / "server.log").open("w")
    proc = subprocess.Popen([chroma, "run", "--path", str(path or folder / "db"), "--host",
                             "127.0.0.1", "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"chroma run did not come up; see {folder / 'server.log'}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat",
                             timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.bench_scale")
    parser.add_argument("--articles", type=int, default=20000)
    parser.add_argument("--new", type=int, default=300)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--corpus", type=Path,
                        default=BBC_CORPUS)
    parser.add_argument("--server", action="store_true",
                        help="keep the stores in a `chroma run` server on loopback")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        base = get_settings()
        if args.server:
            port = stack.enter_context(chroma_server(Path(tmp)))
            base = base.override(chroma_host="127.0.0.1", chroma_port=port)
        _run(args, base, Path(tmp))


def _run(args: argparse.Namespace, base: Settings, tmp: Path) -> None:
    new = _copies(args.corpus, args.new, tmp / "new")
    empty = base.override(data_dir=tmp / "empty", collection="empty")
    t_empty, _ = timed_ingest(new, empty)
    forget(empty)

    large = base.override(data_dir=tmp / "large", collection="large")
    store = ArticleStore(large)
    started = time.perf_counter()
    chunks = _fill(store, large, _sources(args.corpus, large), args.articles)
    t_fill = time.perf_counter() - started
    started = time.perf_counter()
    ingest(new, store, large, progress=False)
    t_large = time.perf_counter() - started
    held = store.chunks.count()
    started = time.perf_counter()
    KeywordIndex.of(store).ensure()  # what the next reader does, once
    t_keyword = time.perf_counter() - started
    rows = []
    for mode in ("dense", "hybrid"):
        retriever = Retriever(store, mode)
        retriever.retrieve(QUESTIONS[0], top_k=8)
        times = []
        for k in range(args.queries):
            started = time.perf_counter()
            retriever.retrieve(QUESTIONS[k % len(QUESTIONS)] + f" {k}", top_k=8)
            times.append((time.perf_counter() - started) * 1000)
        rows.append((mode, statistics.median(times), _p(times, 0.95)))
    where = "chroma run on loopback" if args.server else "embedded"
    print(f"cores: {os.cpu_count()}; {where}; synthetic store: {args.articles} articles, "
          f"{chunks} chunks written in {t_fill:.0f} s; {held} chunks after the new articles")
    print(f"{args.new} new articles into an empty store:  {t_empty:6.1f} s")
    print(f"{args.new} new articles into the large store: {t_large:6.1f} s "
          f"(ratio {t_large / t_empty:.2f})")
    print(f"keyword index ready for the next reader:     {t_keyword:6.1f} s "
          f"({held} chunks; writes keep it, nothing is rebuilt)")
    for mode, p50, p95 in rows:
        print(f"retrieval {mode:<7} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  ({held} chunks)")


if __name__ == "__main__":
    main()

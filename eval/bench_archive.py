"""An archive of a million chunks on this machine: build it once, then measure what a
newsroom's library of ten years costs. Prints figures, asserts nothing.

    python -m eval.bench_archive build --dir /big/archive --chunks 1000000 [--server]
    python -m eval.bench_archive measure --dir /big/archive [--new 300] [--server]

`build` synthesises the archive as `eval.bench_scale` does (the BBC texts re-titled,
re-dated over ten years and spread over twenty outlets, written through the store's own
`write_articles` with the originals' vectors plus noise), but chunks each original once
and shifts its chunks into every copy, so a million chunks take an hour, not a day. It
resumes where it stopped. `measure`, side by side in one run:

- `--new` real articles ingested into an empty store and into the archive (the ratio),
  and how long of that the keyword table's own update took (the index is current when
  the write returns);
- retrieval p50/p95: dense, hybrid, hybrid with a date filter (one year), hybrid with an
  outlet filter (one of twenty);
- peak RSS of ingest and of the app (`app.py`), the app's start to its first answer over
  /v1, `python -m ingest check --sample 10000`'s time (and a full check's, with
  `--full-check`), and the disk the store and its table use.

With `--server` the archive lives in a `chroma run` server (its folder `<dir>/db`); an
archive built embedded is served from its own folder, so one archive gives both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import httpx
import numpy as np

from eval.bench_growth import _copies, timed_ingest
from eval.bench_ingest import BBC_CORPUS
from eval.bench_scale import QUESTIONS, _p, _sources, chroma_server
from ingest.chunking import chunk_article, embedding_text
from rag.answer.retrieve import Filters, Retriever
from rag.records import Article
from rag.settings import Settings, get_settings
from rag.store.articles import ArticleStore
from rag.store.connection import forget
from rag.store.keyword_table import KeywordTable

logger = logging.getLogger(__name__)
COLLECTION = "archive"
OUTLETS = [f"outlet-{k:02d}" for k in range(20)]
FIRST_DAY = date(2016, 1, 1)
DAYS = 3652  # ten years
ROOT = Path(__file__).resolve().parents[1]


def _settings(folder: Path, port: int | None) -> Settings:
    base = get_settings().override(data_dir=folder / "data", collection=COLLECTION)
    return base.override(chroma_host="127.0.0.1", chroma_port=port) if port else base


@contextlib.contextmanager
def _server(folder: Path, on: bool) -> Iterator[int | None]:
    if not on:
        yield None
        return
    embedded = folder / "data" / "chroma"
    if (folder / "db").exists() or not embedded.exists():
        with chroma_server(folder) as port:  # its data in <folder>/db, kept between runs
            yield port
        return
    # An archive built embedded is served as it is (`chroma run` reads the same files),
    # so both modes are measured on one archive; the keyword table, whose file is named
    # by where the store lives, is copied to the server's name (it describes the same
    # collection) and back when done. Copied, not linked: SQLite keeps a WAL per path,
    # and one file under two names was corrupted so.
    local = KeywordTable.of(_settings(folder, None)).path
    _checkpoint(local)
    with chroma_server(folder, embedded) as port:
        served = KeywordTable.of(_settings(folder, port)).path
        served.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, served)
        try:
            yield port
        finally:
            _checkpoint(served)
            shutil.copyfile(served, local)  # the measure's writes, which the store holds
            for name in (served, *(served.with_name(served.name + x) for x in ("-wal", "-shm"))):
                name.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                served.parent.rmdir()


def _checkpoint(path: Path) -> None:
    """Fold a SQLite file's WAL into it, and close it."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def build(folder: Path, chunks: int, server: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with _server(folder, server) as port:
        settings = _settings(folder, port)
        store = ArticleStore(settings)
        originals = _sources(BBC_CORPUS, settings)
        shapes = []  # (original, its chunks, their vectors)
        cache = folder / "originals.npz"  # their vectors, embedded once (minutes)
        saved = dict(np.load(cache)) if cache.is_file() else {}
        for src in originals:
            pieces = chunk_article(src, settings)
            if src.id not in saved:
                texts = [embedding_text(src, c) for c in pieces]
                saved[src.id] = np.asarray(store.embed(texts), dtype=np.float32)
            shapes.append((src, pieces, saved[src.id]))
        np.savez(cache, **saved)
        k = store.articles.count() if store.exists else 0
        held = store.chunks.count() if store.exists else 0
        rng = np.random.default_rng(7 + k)
        started, pool, first = time.perf_counter(), [], held
        logger.info("archive at %d articles, %d chunks; filling to %d chunks", k, held, chunks)
        # Stopped (SIGTERM, Ctrl-C) between writes, never inside one: a writer killed
        # while Chroma saves its index can leave it growing without bound
        # (chroma-core/chroma#7510; it filled this machine's disk once).
        stop: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: stop.append(signum))
        while held < chunks and not stop:
            src, pieces, vectors = shapes[k % len(shapes)]
            prefix = f"Filed {k}. "
            article = Article(text=prefix + src.text, title=f"{src.title} ({k})",
                              outlet=OUTLETS[k % len(OUTLETS)],
                              published=FIRST_DAY + timedelta(days=(k * 7919) % DAYS))
            shifted = [replace(c, article_id=article.id, version=article.version,
                               text=(prefix + c.text) if i == 0 else c.text,
                               start=0 if i == 0 else c.start + len(prefix),
                               end=c.end + len(prefix)) for i, c in enumerate(pieces)]
            noisy = vectors + rng.normal(0, 0.02, vectors.shape).astype(np.float32)
            noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
            pool.append((article, shifted, noisy.tolist(), []))
            held += len(shifted)
            k += 1
            if len(pool) >= 200 or held >= chunks:
                store.write_articles(pool)
                pool = []
                if k % 5000 < 200:
                    rate = (held - first) / (time.perf_counter() - started)
                    logger.info("%d articles, %d chunks (%.0f chunks/s this run)", k, held,
                                rate)
        logger.info("archive %s: %d articles, %d chunks, in %.0f s",
                    "stopped between writes" if stop else "built", k, held,
                    time.perf_counter() - started)


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _child(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MiB, output) of a child process (its own rusage)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0  # reaped above
        took = time.perf_counter() - started
        out.seek(0)
        return took, usage.ru_maxrss / 1024, out.read()


def _app_start(settings: Settings, env: dict[str, str]) -> tuple[float, float, float]:
    """(seconds from start to its first /v1 answer, the answer's own seconds, the app's
    peak RSS in MiB after answering)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--data-dir",
                             str(settings.data_dir)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        while True:
            if proc.poll() is not None:
                raise SystemExit("the app exited before it answered")
            try:
                model = httpx.get(f"{url}/models", timeout=5).json()["data"][0]["id"]
                break
            except (httpx.HTTPError, KeyError, ValueError):
                time.sleep(0.5)
        asked = time.perf_counter()
        reply = httpx.post(f"{url}/chat/completions", timeout=600, json={
            "model": model, "messages": [{"role": "user", "content": QUESTIONS[1]}]})
        reply.raise_for_status()
        done = time.perf_counter()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        peak = int(next(line.split()[1] for line in status.splitlines()
                        if line.startswith("VmHWM:"))) / 1024
        return done - started, done - asked, peak
    finally:
        proc.terminate()
        proc.wait(60)


def _latency(store: ArticleStore, mode: str, filters: Filters | None, n: int
             ) -> tuple[float, float]:
    retriever = Retriever(store, mode)
    retriever.retrieve(QUESTIONS[0], top_k=8, filters=filters)
    times = []
    for k in range(n):
        started = time.perf_counter()
        retriever.retrieve(QUESTIONS[k % len(QUESTIONS)] + f" {k}", top_k=8, filters=filters)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), _p(times, 0.95)


def measure(folder: Path, new: int, queries: int, server: bool, full_check: bool,
            retrieval_only: bool = False) -> None:
    with _server(folder, server) as port, tempfile.TemporaryDirectory() as tmp:
        settings = _settings(folder, port)
        env = {**os.environ, "RAG_DATA_DIR": str(settings.data_dir), "RAG_COLLECTION":
               COLLECTION, "RAG_READER": "heuristic", "GRADIO_ANALYTICS_ENABLED": "False"}
        if port:
            env.update(RAG_CHROMA_HOST="127.0.0.1", RAG_CHROMA_PORT=str(port))
        store = ArticleStore(settings)
        held = store.chunks.count()
        print(f"cores: {os.cpu_count()}; {'chroma run on loopback' if port else 'embedded'}; "
              f"archive: {store.articles.count()} articles, {held} chunks")
        print(f"disk: {_du(folder) / 2**30:.2f} GiB in all, keyword table "
              f"{_du(KeywordTable.of(settings).path.parent) / 2**30:.2f} GiB")
        year = Filters(date_from=date(2020, 1, 1), date_to=date(2020, 12, 31))
        outlet = Filters(outlets=[OUTLETS[3]])
        for mode, filters, name in (("dense", None, "dense"), ("hybrid", None, "hybrid"),
                                    ("dense", year, "dense, one year"),
                                    ("hybrid", year, "hybrid, one year"),
                                    ("hybrid", outlet, "hybrid, one outlet of 20")):
            p50, p95 = _latency(store, mode, filters, queries)
            print(f"retrieval {name:<24} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")

        if retrieval_only:
            return
        files = _copies(BBC_CORPUS, new, Path(tmp) / "new")
        empty = settings.override(data_dir=Path(tmp) / "empty", collection="empty",
                                  chroma_host=None)
        t_empty, _ = timed_ingest(files, empty)
        forget(empty)
        spent = {"add": 0.0}
        add = KeywordTable.add

        def timed_add(self: KeywordTable, rows):  # noqa: ANN001, ANN202
            began = time.perf_counter()
            try:
                return add(self, rows)
            finally:
                spent["add"] += time.perf_counter() - began

        KeywordTable.add = timed_add  # type: ignore[method-assign]
        try:
            t_large, report = timed_ingest(files, settings)
        finally:
            KeywordTable.add = add  # type: ignore[method-assign]
        added = [r.article_id for r in report.results if r.status == "added" and r.article_id]
        print(f"{new} new articles into an empty store: {t_empty:7.1f} s")
        print(f"{new} new articles into the archive:    {t_large:7.1f} s "
              f"(ratio {t_large / t_empty:.2f}); the keyword table's update "
              f"{spent['add']:.1f} s of it (current when the write returns)", flush=True)
        started = time.perf_counter()
        for article_id in added:
            store.remove_article(article_id)
        t_remove = time.perf_counter() - started
        print(f"the {len(added)} removed again: {t_remove:.1f} s", flush=True)
        forget(settings)
        checks = [["--sample", "10000"]] + ([[]] if full_check else [])
        for extra in checks:
            took, peak, out = _child([sys.executable, "-m", "ingest", "check", *extra], env)
            print(f"ingest check {' '.join(extra) or '(every vector)'}: {took:7.1f} s, peak "
                  f"RSS {peak:.0f} MiB ({out.strip().splitlines()[-1] if out.strip() else ''})")
        took, peak, out = _child([sys.executable, "-m", "ingest", "-q", *files], env)
        print(f"python -m ingest of the {new} new articles: {took:.1f} s, peak RSS "
              f"{peak:.0f} MiB")
        took, _, out = _child([sys.executable, "-m", "ingest", "remove", *added], env)
        print(f"python -m ingest remove of them: {took:.1f} s")
        ready, answer, peak = _app_start(settings, env)
        print(f"app: first /v1 answer {ready:.1f} s after start (the answer itself "
              f"{answer:.1f} s); peak RSS {peak:.0f} MiB")
        print(json.dumps({"chunks": held}))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    parser = argparse.ArgumentParser(prog="python -m eval.bench_archive")
    parser.add_argument("step", choices=["build", "measure"])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=300)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--server", action="store_true")
    parser.add_argument("--full-check", action="store_true",
                        help="also time `ingest check` looking up every vector")
    parser.add_argument("--retrieval-only", action="store_true",
                        help="only the size, disk and retrieval figures")
    args = parser.parse_args()
    if args.step == "build":
        build(args.dir, args.chunks, args.server)
    else:
        measure(args.dir, args.new, args.queries, args.server, args.full_check,
                args.retrieval_only)


if __name__ == "__main__":
    main()

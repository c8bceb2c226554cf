"""Does ingest slow down as the store grows? Prints figures, asserts nothing.

    python -m eval.bench_growth [--copies 300] [--corpus ../shared/corpora/bbc]

Side by side in one process: N synthetic articles (BBC texts re-titled and re-dated,
so every one is new) ingested into an empty store, and the same N into a store that
already holds the whole BBC corpus. Also the whole corpus's own ingest time and this
process's peak memory (ru_maxrss) after it.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from eval.bench_ingest import BBC_CORPUS, _sample
from ingest.pipeline import ingest
from ingest.results import Report
from rag.settings import Settings, get_settings
from rag.store.articles import ArticleStore
from rag.store.connection import forget


def _copies(corpus: Path, n: int, folder: Path) -> list[str]:
    out = []
    folder.mkdir(parents=True, exist_ok=True)
    for k, src in enumerate(map(Path, _sample(corpus, n))):
        title, _, body = src.read_text(encoding="utf-8", errors="replace").partition("\n")
        text = (f"{title.strip()} (wire copy {k})\n\nFiled on {1 + k % 28} March 2006. "
                f"{body.strip()}\n")
        path = folder / f"copy-{k:05d}.txt"
        path.write_text(text, encoding="utf-8")
        out.append(str(path))
    return out


def timed_ingest(files: list[str], settings: Settings) -> tuple[float, Report]:
    """Seconds to ingest `files` into the store `settings` name, the model loaded first
    (so the clock sees ingest only), and the report."""
    store = ArticleStore(settings)
    store.embed_model  # noqa: B018 - loaded before the clock starts
    started = time.perf_counter()
    report = ingest(files, store, settings, progress=False)
    return time.perf_counter() - started, report


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.bench_growth")
    parser.add_argument("--copies", type=int, default=300)
    parser.add_argument("--corpus", type=Path,
                        default=BBC_CORPUS)
    args = parser.parse_args()
    base = get_settings()
    with tempfile.TemporaryDirectory() as tmp:
        copies = _copies(args.corpus, args.copies, Path(tmp) / "copies")
        empty = base.override(data_dir=Path(tmp) / "empty")
        t_empty, into_empty = timed_ingest(copies, empty)
        forget(empty)

        full = base.override(data_dir=Path(tmp) / "full")
        store = ArticleStore(full)
        started = time.perf_counter()
        corpus = ingest([str(args.corpus)], store, full, progress=False)
        t_corpus = time.perf_counter() - started
        peak = _peak_mb()
        held = store.chunks.count()
        started = time.perf_counter()
        into_full = ingest(copies, store, full, progress=False)
        t_full = time.perf_counter() - started
    print(f"cores: {os.cpu_count()}")
    print(f"whole corpus: {corpus.count('added')} articles, {corpus.chunks_written} chunks in "
          f"{t_corpus:.1f} s ({corpus.chunks_written / t_corpus:.1f} chunks/s); peak RSS "
          f"{peak:.0f} MB")
    print(f"{args.copies} new articles into an empty store:       {t_empty:6.1f} s "
          f"({into_empty.chunks_written} chunks)")
    print(f"{args.copies} new articles into a store of {held} chunks: {t_full:6.1f} s "
          f"({into_full.chunks_written} chunks)")
    print(f"ratio full / empty: {t_full / t_empty:.2f}")


if __name__ == "__main__":
    main()

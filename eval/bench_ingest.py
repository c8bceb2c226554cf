"""Ingestion benchmark: prints figures, asserts nothing (timings here are noisy).

    python -m eval.bench_ingest [--n 200] [--corpus ../shared/corpora/bbc]

Runs side by side in one process, so the ratios are comparable: a first ingest of
N articles at embedding batch sizes 10 and 64, then a re-ingest of the same files
(everything unchanged), which should cost a small fraction of the first.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ingest.pipeline import ingest
from rag.settings import PROJECT_ROOT, get_settings
from rag.store.articles import ArticleStore

BBC_CORPUS = PROJECT_ROOT.parent / "shared" / "corpora" / "bbc"  # beside the project, as in CI


def _sample(corpus: Path, n: int) -> list[str]:
    files = sorted(corpus.rglob("*.txt"))
    files = [f for f in files if not f.name.lower().startswith("readme")]
    step = max(1, len(files) // n)
    return [str(f) for f in files[::step][:n]]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.bench_ingest")
    parser.add_argument("--n", type=int, default=200, help="articles to ingest")
    parser.add_argument("--corpus", type=Path,
                        default=BBC_CORPUS)
    args = parser.parse_args()
    files = _sample(args.corpus, args.n)
    base = get_settings()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (10, 64):
            settings = base.override(data_dir=Path(tmp) / f"b{batch}", embed_batch_size=batch)
            store = ArticleStore(settings)
            store.embed(["warm up"])  # model load is not part of the figure
            t0 = time.perf_counter()
            first = ingest(files, store, settings, progress=False)
            t1 = time.perf_counter()
            again = ingest(files, store, settings, progress=False)
            t2 = time.perf_counter()
            rows.append((batch, len(files), first.chunks_written, t1 - t0, t2 - t1,
                         again.count("unchanged")))
    print(f"{'batch':>5} {'articles':>8} {'chunks':>7} {'first s':>8} {'art/s':>6} "
          f"{'chunk/s':>8} {'re-ingest s':>11} {'unchanged':>9}")
    for batch, n, chunks, first_s, again_s, unchanged in rows:
        print(f"{batch:>5} {n:>8} {chunks:>7} {first_s:>8.1f} {n / first_s:>6.1f} "
              f"{chunks / first_s:>8.1f} {again_s:>11.2f} {unchanged:>9}")
    print(f"\nbatch 10 vs 64, first-ingest time ratio: {rows[0][3] / rows[1][3]:.2f} "
          "(below 1 means batch 10 is faster)")
    print(f"re-ingest / first ingest (batch 10): {rows[0][4] / rows[0][3]:.3f}")


if __name__ == "__main__":
    main()

"""Speed benchmark, side by side in one run: prints figures, asserts nothing.

    python -m eval.bench_speed [--n 300] [--corpus ../shared/corpora/bbc]

1. Encoding the same chunk texts: sentence-transformers (torch) at its best batch size
   against the ONNX Runtime path (`rag/store/onnx_embedding.py`), and how far their vectors
   differ.
2. End-to-end ingest of N BBC articles into an empty store, with each backend, against
   the raw torch encode of the very chunks that ingest embeds (issue 12's ratio).
3. Cold start: wall time of `python -m rag ask` in a fresh process, with each backend.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from eval.bench_ingest import BBC_CORPUS, _sample
from ingest.chunking import chunk_article, embedding_text
from ingest.pipeline import ingest, read_source
from ingest.sources import expand
from rag.settings import PROJECT_ROOT, Settings, get_settings
from rag.store.articles import ArticleStore
from rag.store.connection import forget
from rag.store.embeddings import EmbedSpec, get_embed_model


def _chunk_texts(files: list[str], settings: Settings) -> list[str]:
    texts = []
    for source in expand(files).sources:
        for _, article in read_source(source, settings):
            if hasattr(article, "text"):
                texts += [embedding_text(article, c) for c in chunk_article(article, settings)]
    return texts


def _raw_torch(texts: list[str], folder: str) -> tuple[float, int, np.ndarray]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(folder, device="cpu")
    best = (float("inf"), 0, np.zeros(0))
    for batch in (10, 32, 64):
        started = time.perf_counter()
        vectors = model.encode(texts, batch_size=batch, normalize_embeddings=True)
        took = time.perf_counter() - started
        if took < best[0]:
            best = (took, batch, vectors)
    return best


def _cold_ask(data: Path, backend: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_DATA_DIR=str(data), RAG_EMBED_BACKEND=backend)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rag", "ask", "why did the shares fall?"],
                   cwd=PROJECT_ROOT, env=env, capture_output=True, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.bench_speed")
    parser.add_argument("--n", type=int, default=300, help="articles to ingest")
    parser.add_argument("--corpus", type=Path,
                        default=BBC_CORPUS)
    args = parser.parse_args()
    files = _sample(args.corpus, args.n)
    base = get_settings()
    texts = _chunk_texts(files, base)
    folder = EmbedSpec.parse(base.embed_model).model
    raw, batch, reference = _raw_torch(texts, folder)
    onnx_model = get_embed_model(base.override(embed_backend="onnx"))
    started = time.perf_counter()
    mine = np.asarray(onnx_model.get_text_embedding_batch(texts))
    onnx_encode = time.perf_counter() - started
    diff = float(np.abs(mine - reference).max())
    rows = [("encode, torch (sentence-transformers, best batch "
             f"{batch})", raw, 1.0),
            ("encode, ONNX Runtime (length-sorted batches of "
             f"{base.embed_batch_size})", onnx_encode, raw / onnx_encode)]
    colds = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("torch", "onnx"):
            data = Path(tmp) / backend
            settings = base.override(data_dir=data, embed_backend=backend)
            store = ArticleStore(settings)
            store.embed_model  # noqa: B018 - loaded before the clock starts, as raw's is
            started = time.perf_counter()
            report = ingest(files, store, settings, progress=False)
            took = time.perf_counter() - started
            rows.append((f"ingest end to end, {backend} ({report.chunks_written} chunks)",
                         took, raw / took))
            forget(settings)
            colds.append((backend, _cold_ask(data, backend)))
    print(f"cores: {os.cpu_count()}; {len(files)} articles, {len(texts)} chunk texts; "
          f"largest vector difference ONNX vs torch: {diff:.1e}")
    print(f"{'what':<62} {'seconds':>8} {'x raw torch encode':>19}")
    for what, seconds, ratio in rows:
        print(f"{what:<62} {seconds:>8.2f} {ratio:>18.2f}x")
    print(f"{'cold `python -m rag ask` (wall, fresh process)':<62}")
    for backend, seconds in colds:
        print(f"  {backend:<60} {seconds:>8.2f}")


if __name__ == "__main__":
    main()

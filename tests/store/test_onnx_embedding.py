"""The ONNX Runtime path for the bundled MiniLM: the same vectors as torch's, and an
answer that never imports torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.settings import Settings
from rag.store.embeddings import EmbedSpec, get_embed_model
from rag.store.onnx_embedding import MAX_TOKENS, OnnxEmbedding, ensure_onnx, onnx_path

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT.parent / "shared" / "corpora" / "seed"

TEXTS = [
    "Iran and Azerbaijan move to repair relations.",
    "A",
    "Déjà vu: the café’s owner said “no comment” — twice.",
    "The Bank of England held rates at 4.75% on Thursday, its ninth month unchanged. " * 40,
    "Shares in Glazer's Manchester United bid fell 3p to 275p.",
    "",
] + [f"Sentence {k} about the harbour breakwater and the winter storms." for k in range(25)]


def test_onnx_vectors_equal_torch_vectors_for_texts_of_every_length(tmp_path: Path) -> None:
    """Padding, truncation at 256 word pieces, unicode, an empty text, several batches."""
    settings = Settings(data_dir=tmp_path, model_cache=tmp_path / "cache")
    onnx = get_embed_model(settings.override(embed_backend="onnx"))
    torch = get_embed_model(settings.override(embed_backend="torch"))
    assert isinstance(onnx, OnnxEmbedding) and not isinstance(torch, OnnxEmbedding)
    mine = np.asarray(onnx.get_text_embedding_batch(TEXTS))
    theirs = np.asarray(torch.get_text_embedding_batch(TEXTS))
    assert mine.shape == theirs.shape == (len(TEXTS), 384)
    assert float(np.abs(mine - theirs).max()) < 1e-4
    assert np.allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)
    query = "why did relations sour?"
    assert np.allclose(onnx.get_query_embedding(query), torch.get_query_embedding(query),
                       atol=1e-4)
    long_text = TEXTS[3]
    assert len(onnx._tokenizer.encode(long_text).ids) == MAX_TOKENS  # truncated, like torch


def test_the_export_is_made_once_and_reused(tmp_path: Path) -> None:
    spec = EmbedSpec.parse("local:all-MiniLM-L6-v2")
    cache = tmp_path / "cache"
    first = ensure_onnx(Path(spec.model), cache, spec.name)
    assert first == onnx_path(Path(spec.model), cache, spec.name) and first.is_file()
    stamp = first.stat().st_mtime_ns
    assert ensure_onnx(Path(spec.model), cache, spec.name).stat().st_mtime_ns == stamp
    assert [p.name for p in cache.iterdir()] == [first.name]  # no temporaries left


@pytest.mark.skipif(not SEED.is_dir(), reason="shared corpora missing")
def test_ingest_and_an_answer_never_import_torch(tmp_path: Path) -> None:
    """The cold start's floor was importing torch and sentence-transformers (~4-10 s).
    Once the model is exported (`make setup` does it), nothing imports them."""
    spec = EmbedSpec.parse("local:all-MiniLM-L6-v2")
    ensure_onnx(Path(spec.model), Settings().model_cache, spec.name)
    script = (
        "import sys\n"
        "from ingest.pipeline import ingest\nfrom rag.answer.engine import Ask, Engine\n"
        "from rag.settings import Settings\nfrom rag.store.articles import ArticleStore\n"
        f"s = Settings(data_dir={str(tmp_path / 'data')!r}, collection='onnx')\n"
        f"assert ingest([{str(SEED)!r}], ArticleStore(s), s, progress=False).count('added')\n"
        "a = Engine.from_settings(s).ask(Ask('Why did relations between Iran and Azerbaijan "
        "sour?'))\n"
        "assert a.citations and not a.refused\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers')"
        " if m in sys.modules))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"

"""A sentence-transformers folder (the bundled MiniLM) run by ONNX Runtime, not torch.

Contract: a llama-index `BaseEmbedding` whose vectors are the folder's own (mean
pooled, normalised, truncated at `MAX_TOKENS` word pieces as sentence-transformers
does). The model is exported once (torch, transformers and onnx, only then) to
`<RAG_MODEL_CACHE>/<name>-<key>.onnx`, with the pooling and normalisation inside the
graph, so an answer needs no torch at all; `make setup` exports it (`python -m
rag.store.onnx_embedding`), otherwise the first use does. Tokens come from the folder's
own tokenizer.json (`tokenizers`).

Why ONNX Runtime: docs/decisions/onnx-embedding.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

logger = logging.getLogger(__name__)

MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length, as sentence-transformers truncates
_EXPORT_LOCK = threading.Lock()


def _key(folder: Path) -> str:
    """Changes when the weights or their config change; the same for the same package
    installed in another venv (so one export serves them all)."""
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for name in ("model.safetensors", "pytorch_model.bin", "tokenizer.json"):
        path = folder / name
        if path.is_file():
            digest.update(f"{name}:{path.stat().st_size}".encode())
    return digest.hexdigest()[:12]


def onnx_path(folder: Path, cache: Path, name: str) -> Path:
    return Path(cache).expanduser() / f"{name}-{_key(folder)}.onnx"


def export(folder: Path, target: Path) -> Path:
    """Write the folder's transformer with mean pooling and L2 normalisation as ONNX."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder)).eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:  # noqa: ANN401
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    dummy = torch.ones(2, 8, dtype=torch.long)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shapes that are fixed here
            torch.onnx.export(
                Pooled().eval(), (dummy, dummy, torch.zeros_like(dummy)), tmp,
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["embedding"], opset_version=17, dynamo=False,
                dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in
                                 ("input_ids", "attention_mask", "token_type_ids")},
                              "embedding": {0: "batch"}})
        os.replace(tmp, target)  # a process loading it never sees half a model
    finally:
        Path(tmp).unlink(missing_ok=True)
    logger.info("exported %s to %s", folder.name, target)
    return target


def ensure_onnx(folder: Path, cache: Path, name: str) -> Path:
    target = onnx_path(folder, cache, name)
    with _EXPORT_LOCK:
        if not target.is_file():
            logger.warning("preparing the embedding model for ONNX Runtime (once): %s", target)
            export(folder, target)
    return target


class OnnxEmbedding(BaseEmbedding):
    """Mean-pooled, normalised sentence vectors from an exported transformer."""

    folder: str
    onnx_file: str
    _session: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)

    def __init__(self, folder: str, onnx_file: str, embed_batch_size: int = 10) -> None:
        super().__init__(model_name=Path(folder).name, folder=folder, onnx_file=onnx_file,
                         embed_batch_size=embed_batch_size)
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, min(os.cpu_count() or 1, 4))
        options.log_severity_level = 3
        self._session = ort.InferenceSession(onnx_file, options,
                                             providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.no_padding()
        self._tokenizer = tokenizer  # an ONNX Runtime session may be run from many threads

    @classmethod
    def class_name(cls) -> str:
        return "OnnxEmbedding"

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Length-sorted batches, so a batch pads to its own longest text only."""
        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), 0), dtype=np.float32)
        size = self.embed_batch_size
        for start in range(0, len(order), size):
            part = order[start:start + size]
            width = max(len(encodings[i].ids) for i in part)
            ids = np.zeros((len(part), width), dtype=np.int64)
            mask = np.zeros((len(part), width), dtype=np.int64)
            for row, i in enumerate(part):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            vectors = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                               "token_type_ids": np.zeros_like(ids)})[0]
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[part] = vectors
        return out

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self._encode(list(texts)).tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)

    def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False,
                                 **kwargs: Any) -> list[list[float]]:
        """All texts sorted by length in one pass (llama-index's own batching would
        cut them in input order first)."""
        return self._get_text_embeddings(list(texts))


def main() -> None:
    """`python -m rag.store.onnx_embedding`: export the configured local model now (make setup)."""
    from rag.settings import get_settings
    from rag.store.embeddings import EmbedSpec

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = get_settings()
    spec = EmbedSpec.parse(settings.embed_model)
    if spec.backend != "hf" or settings.embed_backend != "onnx":
        logger.info("nothing to export (RAG_EMBED_MODEL=%s, RAG_EMBED_BACKEND=%s)",
                    settings.embed_model, settings.embed_backend)
        return
    path = ensure_onnx(Path(spec.model), Path(settings.model_cache), spec.name)
    logger.info("ONNX model ready: %s", path)


if __name__ == "__main__":
    main()

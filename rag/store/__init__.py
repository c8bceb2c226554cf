"""Storage: the Chroma store of articles and chunks (`articles`), its BM25 keyword index
beside it (`keyword`, queries expanded by `expansion`), the one-writer lock (`lock`),
one client per store and process (`connection`), the embedding model (`embeddings`,
`onnx_embedding`) and the store's health check (`health`).

Contract: a write is whole or absent after a crash (`ArticleStore.recover`, `python -m
ingest check --repair`); failures reach callers as `StoreError`, one line a user can
act on. Nothing here answers questions.
"""

from __future__ import annotations

import importlib
from typing import Any

# Re-exported lazily (PEP 562): an eager import here would load the package's
# modules before `python -m` runs one of them (runpy warns, and the Makefile runs
# some), and would load them all for a caller that needs one.
_EXPORTS = {
    "ArticleStore": "rag.store.articles",
    "EmbedSpec": "rag.store.embeddings",
    "EmbeddingConfigError": "rag.store.embeddings",
    "EmbeddingMismatchError": "rag.store.articles",
    "KeywordIndex": "rag.store.keyword",
    "StoreError": "rag.store.connection",
    "WriterBusyError": "rag.store.lock",
    "get_embed_model": "rag.store.embeddings",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the name is
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

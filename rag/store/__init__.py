"""Storage: the Chroma store of articles and chunks (`articles`), its BM25 keyword index
beside it (`keyword`, queries expanded by `expansion`), the one-writer lock (`lock`),
one client per store and process (`connection`), the embedding model (`embeddings`,
`onnx_embedding`) and the store's health check (`health`).

Contract: a write is whole or absent after a crash (`ArticleStore.recover`, `python -m
ingest check --repair`); failures reach callers as `StoreError`, one line a user can
act on. Nothing here answers questions.
"""

from rag.store.articles import ArticleStore, EmbeddingMismatchError
from rag.store.connection import StoreError
from rag.store.embeddings import EmbeddingConfigError, EmbedSpec, get_embed_model
from rag.store.keyword import KeywordIndex
from rag.store.lock import WriterBusyError

__all__ = ["ArticleStore", "EmbedSpec", "EmbeddingConfigError", "EmbeddingMismatchError",
           "KeywordIndex", "StoreError", "WriterBusyError", "get_embed_model"]

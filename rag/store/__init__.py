"""Storage: the Chroma store of articles and chunks (`articles`: opening and keeping up;
its reads in `reads`, its crash-safe writes in `writes`, its records in `metadata`),
its BM25 keyword index beside it (`keyword` over the SQLite table `keyword_table`, which
every write changes; queries expanded by `expansion`), the
one-writer lock (`lock`), one client per store and process (`connection`), the
embedding model (`embeddings`, `onnx_embedding`) and the store's health check (`health`).

Contract: a write is whole or absent after a crash (`ArticleStore.recover`, `python -m
ingest check --repair`); failures reach callers as `StoreError`, one line a user can
act on. Nothing here answers questions.
"""

from rag.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "ArticleStore": "rag.store.articles",
    "EmbedSpec": "rag.store.embeddings",
    "EmbeddingConfigError": "rag.store.embeddings",
    "EmbeddingMismatchError": "rag.store.articles",
    "KeywordIndex": "rag.store.keyword",
    "StoreError": "rag.store.connection",
    "WriterBusyError": "rag.store.lock",
    "get_embed_model": "rag.store.embeddings",
})

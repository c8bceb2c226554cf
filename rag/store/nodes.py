"""The llama-index node a stored chunk becomes, for the dense and the BM25 side alike."""

from __future__ import annotations

from typing import Any

from llama_index.core.schema import TextNode

# Keys of chunk metadata that are bookkeeping, not text: kept out of BM25 and prompts.
HIDDEN_KEYS = ("article_id", "version", "chunk_index", "start", "end", "paragraph",
               "paragraph_end", "published_int", "url", "path", "outlet", "published",
               "story", "dates", "dates_first", "dates_last")


def chunk_node(chunk_id: str, text: str, meta: dict[str, Any]) -> TextNode:
    """One node shape for both retrievers: the title is the only metadata BM25 sees."""
    return TextNode(id_=chunk_id, text=text, metadata=dict(meta),
                    excluded_embed_metadata_keys=list(HIDDEN_KEYS),
                    excluded_llm_metadata_keys=list(HIDDEN_KEYS))

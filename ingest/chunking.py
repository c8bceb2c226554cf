"""Sentence-aware chunks that fit the embedding model, each with its exact character span.

llama-index's `SentenceSplitter` does the splitting (paragraphs, then sentences, with
overlap), counted in the embedding model's own word pieces. It returns strings, not
offsets, so we locate each chunk in the article text: a citation must be able to
quote and highlight `text[start:end]` exactly.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from llama_index.core.node_parser import SentenceSplitter
from tokenizers import Tokenizer

from rag.records import Article, Chunk
from rag.settings import Settings
from rag.store.embeddings import EmbedSpec

PARAGRAPH_SEP = "\n\n"


@lru_cache(maxsize=4)
def _tokenizer(folder: str) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def token_counter(embed_model: str) -> Callable[[str], list[int]]:
    """Word pieces of the embedding model (MiniLM's for remote models: a close, safe proxy)."""
    spec = EmbedSpec.parse(embed_model)
    folder = spec.model if spec.backend == "hf" else EmbedSpec.parse("local:all-MiniLM-L6-v2").model
    if not (Path(folder) / "tokenizer.json").is_file():
        folder = EmbedSpec.parse("local:all-MiniLM-L6-v2").model
    tokenizer = _tokenizer(folder)
    return lambda text: tokenizer.encode(text, add_special_tokens=False).ids


@lru_cache(maxsize=8)
def _splitter(chunk_tokens: int, overlap: int, embed_model: str) -> SentenceSplitter:
    return SentenceSplitter(
        chunk_size=chunk_tokens,
        chunk_overlap=overlap,
        tokenizer=token_counter(embed_model),
        paragraph_separator=PARAGRAPH_SEP,
    )


def _locate(text: str, chunk: str, cursor: int) -> tuple[int, int]:
    start = text.find(chunk, cursor)
    if start < 0:
        start = text.find(chunk)
    if start >= 0:
        return start, start + len(chunk)
    # The splitter normally returns exact substrings; if a version ever changes
    # whitespace, match the words with any whitespace between them.
    pattern = r"\s+".join(re.escape(word) for word in chunk.split())
    match = re.compile(pattern).search(text, cursor) or re.compile(pattern).search(text)
    if not match:
        raise ValueError(f"chunk not found in article text: {chunk[:60]!r}")
    return match.start(), match.end()


def chunk_article(article: Article, settings: Settings) -> list[Chunk]:
    text = article.text
    splitter = _splitter(settings.chunk_tokens, settings.chunk_overlap, settings.embed_model)
    paragraph_starts = [0] + [m.end() for m in re.finditer(re.escape(PARAGRAPH_SEP), text)]
    chunks: list[Chunk] = []
    seen: set[str] = set()
    cursor = 0
    for piece in splitter.split_text(text):
        if not piece.strip():
            continue
        start, end = _locate(text, piece, cursor)
        cursor = start + 1
        # A passage repeated word for word in one article (a pasted log, a table of
        # dates) is kept once: thousands of identical vectors wreck Chroma's HNSW graph,
        # and measured on `../shared/fixtures`, other articles' chunks stop being found.
        if text[start:end] in seen:
            continue
        seen.add(text[start:end])
        chunks.append(
            Chunk(
                article_id=article.id,
                version=article.version,
                index=len(chunks),
                text=text[start:end],
                start=start,
                end=end,
                paragraph=bisect.bisect_right(paragraph_starts, start) - 1,
                paragraph_end=bisect.bisect_right(paragraph_starts, end - 1) - 1,
            )
        )
    return chunks


def embedding_text(article: Article, chunk: Chunk) -> str:
    """What gets embedded: the headline gives a short chunk the context it lacks."""
    return f"{article.title}\n{chunk.text}" if article.title else chunk.text

"""How an article and its chunks are kept as Chroma records, and read back.

Pure functions, no store access: the metadata a chunk and an article record carry
(`chunk_meta`, `article_meta`), an article's vector (`article_vector`), the days a
chunk speaks of (`chunk_dates`, dates as `date_int`), and a record read back as a
`StoredArticle` (`to_article`). `rag.store.writes` writes them, `rag.store.reads` reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from rag.dates.parse import resolve_dates
from rag.records import Article, StoredArticle, canonical_url


def date_int(value: date) -> int:
    """A date as YYYYMMDD: how chunks store it, so Chroma can compare it in `where`."""
    return value.year * 10000 + value.month * 100 + value.day


def chunk_meta(article: Article, path: str | None) -> dict[str, Any]:
    """What every chunk of `article` carries (its own place and dates are added)."""
    meta: dict[str, Any] = {"article_id": article.id, "title": article.title,
                            "story": article.story or article.id}
    if article.published:
        meta["published"] = article.published.isoformat()
        meta["published_int"] = date_int(article.published)
    if article.outlet:
        meta["outlet"] = article.outlet
    if article.url:
        meta["url"] = article.url
    if path:
        meta["path"] = path
    return meta


def article_meta(article: Article, paths: list[str], n_chunks: int) -> dict[str, Any]:
    """The article record's metadata for this version (committed: `version` set)."""
    meta = chunk_meta(article, None)
    del meta["article_id"]
    if article.url:
        meta["url"] = canonical_url(article.url)
        meta["source_url"] = article.url
    meta.update({
        "version": article.version,
        "chunks": n_chunks,
        "ingested_at": datetime.now(UTC).isoformat(timespec="seconds"),
    })
    if paths:
        meta["paths"] = paths
    if article.authors:
        meta["authors"] = list(article.authors)
    if article.feed_summary:
        meta["feed_summary"] = True
    return meta


def article_vector(embeddings: Sequence[Sequence[float]]) -> list[float]:
    """An article's vector as the article collection keeps it: its chunks' mean,
    normalised (what ingest searches with to find an article's copies)."""
    mean = np.mean(np.asarray(embeddings, dtype=np.float32), axis=0)
    return (mean / (np.linalg.norm(mean) or 1.0)).tolist()


def chunk_dates(text: str, published: date | None) -> dict[str, Any]:
    """The days a chunk's text speaks of, read against the publication date, as chunk
    metadata: `dates` lists each mention's range ("20250428-20250428;..."), and
    `dates_first`/`dates_last` span them all, so a Chroma `where` can pre-select and
    `Filters.match` decide exactly."""
    mentions = resolve_dates(text, published)
    if not mentions:
        return {"dates": ""}  # read, and none: unlike a chunk stored before dates were read
    pairs = sorted({(date_int(m.first), date_int(m.last)) for m in mentions})
    return {"dates": ";".join(f"{a}-{b}" for a, b in pairs),
            "dates_first": min(a for a, _ in pairs), "dates_last": max(b for _, b in pairs)}


def to_article(aid: str, meta: dict[str, Any], text: str) -> StoredArticle:
    """An article record (its id, metadata and text) as a `StoredArticle`."""
    published = meta.get("published")
    authors = meta.get("authors") or []
    return StoredArticle(
        id=aid,
        title=meta.get("title", ""),
        text=text,
        version=meta.get("version", ""),
        chunks=int(meta.get("chunks", 0)),
        url=meta.get("source_url") or meta.get("url"),
        paths=list(meta.get("paths") or []),
        published=date.fromisoformat(published) if published else None,
        authors=list(authors),
        outlet=meta.get("outlet"),
        ingested_at=meta.get("ingested_at"),
        story=meta.get("story"),
        feed_summary=bool(meta.get("feed_summary")),
    )

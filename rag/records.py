"""The records that flow from ingestion into the store and back out to answers."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that only track the click, never change the article.
_TRACKING_PARAMS = re.compile(r"^(utm_.*|fbclid|gclid|mc_cid|mc_eid|ocid|cmpid|ref|ref_src)$", re.I)


def strip_tracking(url: str) -> str:
    """The URL as given, less click-tracking parameters and fragment: what we store and show."""
    parts = urlsplit(url.strip())
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not _TRACKING_PARAMS.match(k)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def canonical_url(url: str) -> str:
    """One spelling per article URL: a tracking link to a stored article is not a new one."""
    parts = urlsplit(url.strip())
    query = [(k, v) for k, v in parse_qsl(parts.query) if not _TRACKING_PARAMS.match(k)]
    path = parts.path.rstrip("/") or "/"
    host = (parts.hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    if parts.port and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme.lower(), host, path, urlencode(sorted(query)), ""))


def normalise_text(text: str) -> str:
    return " ".join(text.split()).casefold()


def text_hash(text: str) -> str:
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()


_LINE_REF = re.compile(r"(.*)#L(\d+)", re.DOTALL)


def line_ref(file: str, line: int) -> str:
    """How an article on line `line` of a .jsonl file is stored as a path: `file.jsonl#L<n>`.

    One line of a feed is one article, so the file's path alone cannot name it.
    """
    return f"{file}#L{line}"


def split_line_ref(ref: str) -> tuple[str, int | None]:
    """`file.jsonl#L3` -> (`file.jsonl`, 3); any other path -> (path, None)."""
    match = _LINE_REF.fullmatch(ref)
    return (match.group(1), int(match.group(2))) if match else (ref, None)


def article_id_for(text: str, url: str | None) -> str:
    """Stable id: the canonical URL when there is one, else the normalised text."""
    key = "url:" + canonical_url(url) if url else "text:" + text_hash(text)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass
class Article:
    text: str
    title: str = ""
    url: str | None = None
    path: str | None = None
    published: date | None = None
    authors: list[str] = field(default_factory=list)
    outlet: str | None = None
    notes: list[str] = field(default_factory=list)  # warnings for the ingest summary
    # Set by ingest from the library, not part of the text: not in `version`.
    story: str | None = None  # the story (near-duplicate group) this article joins
    feed_summary: bool = False  # the text is a feed's summary: the page could not be had

    # `id` and `version` hash the whole text, and ingest asks for them many times per
    # article: they are cached, and any assignment (ingest sets `outlet` and `url` after
    # reading) drops the cache. Lists changed in place (`authors.append`) are not seen.
    _DERIVED = ("id", "version")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._DERIVED:
            raise AttributeError(f"Article.{name} is derived from the other fields")
        super().__setattr__(name, value)
        for derived in self._DERIVED:
            self.__dict__.pop(derived, None)

    @cached_property
    def id(self) -> str:
        return article_id_for(self.text, self.url)

    @cached_property
    def version(self) -> str:
        """Changes whenever anything that ends up in the chunks changes.

        The URL counts in its canonical form: the same article reached through a
        tracking link (`?utm_source=...`) is the same version, not an update.
        """
        url = canonical_url(self.url) if self.url else None
        payload = json.dumps(
            [self.text, self.title, url, self.published and self.published.isoformat(),
             self.authors, self.outlet],
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


@dataclass
class Chunk:
    article_id: str
    version: str
    index: int
    text: str
    start: int  # character span in the stored article text: text == article.text[start:end]
    end: int
    paragraph: int  # paragraph (0-based) holding the chunk's first character
    paragraph_end: int

    @property
    def id(self) -> str:
        return f"{self.article_id}:{self.version}:{self.index}"


@dataclass
class StoredArticle:
    """An article as the store holds it: what `list` shows and citations resolve to."""

    id: str
    title: str
    text: str
    version: str
    chunks: int
    url: str | None = None
    paths: list[str] = field(default_factory=list)
    published: date | None = None
    authors: list[str] = field(default_factory=list)
    outlet: str | None = None
    ingested_at: str | None = None
    story: str | None = None  # None: stored before stories were kept
    feed_summary: bool = False  # its text is a feed's summary, not the page's

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "published": self.published.isoformat() if self.published else None,
            "outlet": self.outlet,
            "authors": self.authors,
            "url": self.url,
            "paths": self.paths,
            "chunks": self.chunks,
            "chars": len(self.text),
            "version": self.version,
            "ingested_at": self.ingested_at,
            "story": self.story or self.id,
            "feed_summary": self.feed_summary,
        }


# "(updated)", "[Update 2]", "UPDATE:", "Updated -", "UPDATE 3-", "(corrected)" ...
_MARKER = re.compile(
    r"[(\[]\s*(?:updated?|corrected|correction)(?:\s*\d+)?\s*[)\]]"
    r"|^\s*(?:updated?|corrected|correction)(?:\s*\d+)?\s*[:\-\u2013\u2014|]",
    re.IGNORECASE,
)


def plain_title(title: str) -> str:
    """A headline without update markers, for telling versions of one page."""
    return " ".join(_MARKER.sub(" ", title).split()).casefold()

"""Bytes of one source (file, URL response, stdin) to `Article`s, one parser per format.

Every problem a user can cause raises `SourceError` with a one-line reason; the
pipeline reports it for that source and goes on with the batch.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from ingest.textparse import find_date, parse_byline, parse_text, split_authors
from rag.errors import RagError
from rag.records import Article

SUPPORTED = (".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl")


class SourceError(RagError):
    """Why one source could not be ingested, in one line."""


def decode_text(data: bytes, what: str = "file") -> tuple[str, list[str]]:
    """UTF-8, else Windows-1252, else Latin-1 (which never fails); says when it fell back."""
    if not data.strip():
        raise SourceError(f"empty {what}")
    head = data[:8192]
    if b"\x00" in head or _control_share(head) > 0.1:
        raise SourceError(f"binary {what}, not text")
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        note = f"not valid UTF-8 (byte {exc.start}); decoded as "
    for encoding in ("cp1252", "latin-1"):
        try:
            return data.decode(encoding), [note + encoding]
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte string")


def _control_share(data: bytes) -> float:
    controls = sum(1 for b in data if b < 32 and b not in (9, 10, 12, 13))
    return controls / max(len(data), 1)


def _require_text(body: str, what: str) -> None:
    if len(re.findall(r"\w+", body)) < 5:
        raise SourceError(f"no article text found in {what}")


def read_text(data: bytes, *, markdown: bool = False, **meta: object) -> list[Article]:
    text, notes = decode_text(data)
    parsed = parse_text(text, markdown=markdown)
    _require_text(parsed.body, "the file")
    return [Article(text=parsed.body, title=parsed.title, authors=parsed.authors,
                    published=parsed.published, notes=notes, **meta)]  # type: ignore[arg-type]


def read_markdown(data: bytes, **meta: object) -> list[Article]:
    return read_text(data, markdown=True, **meta)


def read_html(data: bytes, *, url: str | None = None, **meta: object) -> list[Article]:
    """trafilatura finds the main text (no menus, footers, comments) and the metadata."""
    import trafilatura

    html, notes = decode_text(data, "page")
    doc = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_comments=False, include_tables=False,
        include_images=False, favor_precision=True, deduplicate=False,
    )
    body_raw = (doc.text if doc else "") or ""
    if len(re.findall(r"\w+", body_raw)) < 5:
        raise SourceError("no article text found in the HTML")
    parsed = parse_text(body_raw, title=(doc.title or "").strip() or None)
    _require_text(parsed.body, "the HTML")
    authors = split_authors(doc.author.replace(";", ",")) if doc.author else parsed.authors
    published = parse_date(doc.date) or parsed.published
    canonical = doc.url if doc.url and doc.url.startswith(("http://", "https://")) else url
    outlet = doc.sitename or (urlsplit(canonical).hostname if canonical else None)
    if meta.get("outlet"):
        outlet = str(meta.pop("outlet"))
    else:
        meta.pop("outlet", None)
    return [Article(text=parsed.body, title=parsed.title or _first_words(parsed.body),
                    url=canonical, authors=authors, published=published,
                    outlet=outlet.removeprefix("www.") if outlet else None,
                    notes=notes, **meta)]  # type: ignore[arg-type]


def read_pdf(data: bytes, *, max_pages: int, timeout: float, **meta: object) -> list[Article]:
    """The text layer of the first `max_pages` pages, given up after `timeout` seconds.

    Both limits (RAG_PDF_MAX_PAGES, RAG_PDF_TIMEOUT; `read_source` passes them) exist
    because anyone who can upload can send a PDF of thousands of pages or one built to be
    slow to extract. The time is checked between pages: pypdf cannot be interrupted
    inside one.
    """
    from pypdf import PdfReader

    started = time.monotonic()
    notes: list[str] = []
    try:
        pdf = PdfReader(io.BytesIO(data))
        if pdf.is_encrypted:
            raise SourceError("the PDF is encrypted")
        total = len(pdf.pages)
        if total > max_pages:
            notes.append(f"read the first {max_pages} of {total} pages (RAG_PDF_MAX_PAGES)")
        pages: list[str] = []
        for index in range(min(total, max_pages)):
            pages.append(pdf.pages[index].extract_text() or "")
            if time.monotonic() - started > timeout:
                raise SourceError(f"PDF text extraction took longer than {timeout:g} s "
                                  "(RAG_PDF_TIMEOUT)")
        info = pdf.metadata
    except SourceError:
        raise
    except Exception as exc:  # a damaged file makes pypdf raise many kinds, not only PdfReadError
        detail = " ".join(str(exc).split())[:80]
        raise SourceError(f"corrupt PDF ({type(exc).__name__}: {detail})") from exc
    text = _unwrap_pdf_lines("\n\n".join(pages))
    if len(re.findall(r"\w+", text)) < 5:
        raise SourceError("the PDF has no extractable text (a scan?)")
    title = (info.title or "").strip() if info else ""
    parsed = parse_text(text, title=title or None)
    _require_text(parsed.body, "the PDF")
    authors = parsed.authors
    if not authors and info and info.author:
        authors = split_authors(info.author)
    return [Article(text=parsed.body, title=parsed.title, authors=authors,
                    published=parsed.published, notes=notes, **meta)]  # type: ignore[arg-type]


def _unwrap_pdf_lines(text: str) -> str:
    """PDF text comes hard-wrapped: rejoin lines into paragraphs.

    A line ends a paragraph when a blank line follows, or when it ends a sentence
    and is clearly shorter than the page's usual line.
    """
    lines = text.replace("\r", "").split("\n")
    widths = sorted(len(line) for line in lines if line.strip())
    full = widths[int(len(widths) * 0.8)] if widths else 0
    paragraphs: list[str] = []
    # The paragraph so far as pieces, its last piece the last line, joined once when it
    # ends: grown by concatenation it was copied at every line, quadratic on long ones.
    current: list[str] = []
    for line in lines:
        line = line.strip()
        if not line:
            if current:
                paragraphs.append("".join(current))
            current = []
            continue
        if current and current[-1].endswith("-") and line[:1].islower():
            current[-1] = current[-1][:-1]  # a word hyphenated across lines
        elif current:
            current.append(" ")
        current.append(line)
        if re.search(r"[.!?\"”’)]$", line) and len(line) < 0.75 * full:
            paragraphs.append("".join(current))
            current = []
    if current:
        paragraphs.append("".join(current))
    return "\n".join(paragraphs)


def iter_jsonl(data: bytes) -> list[tuple[int, Article | SourceError]]:
    """Each line's article, or the error for that line; one bad line does not sink the file."""
    text, notes = decode_text(data)
    out: list[tuple[int, Article | SourceError]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((number, _jsonl_article(line, notes)))
        except SourceError as exc:
            out.append((number, exc))
    if not out:
        raise SourceError("empty file")
    return out


def _jsonl_article(line: str, notes: list[str]) -> Article:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SourceError(f"invalid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(item, dict):
        raise SourceError("a line must be a JSON object with a 'text' field")
    raw = item.get("text")
    if not isinstance(raw, str) or not raw.strip():
        raise SourceError("missing or empty 'text' field")
    title = item.get("title")
    parsed = parse_text(raw, title=str(title).strip() if title else None)
    _require_text(parsed.body, "'text'")
    authors = item.get("authors") or item.get("author") or []
    if isinstance(authors, str):
        authors = parse_byline(authors) or split_authors(authors)
    published = parse_date(item.get("published") or item.get("date"))
    item_notes = list(notes)
    if (item.get("published") or item.get("date")) and published is None:
        item_notes.append(f"could not read the date {item.get('published')!r}; left empty")
    url = item.get("url")
    return Article(
        text=parsed.body,
        title=parsed.title,
        url=str(url) if url else None,
        authors=[str(a) for a in authors] or parsed.authors,
        published=published or parsed.published,
        outlet=str(item.get("source") or item.get("outlet") or "") or None,
        notes=item_notes,
    )


def parse_date(value: object) -> date | None:
    """The day a metadata date names, in its own time zone: ISO 8601 (HTML meta, JSON
    Feed, jsonl), RFC 2822 (RSS: "Tue, 01 Dec 2026 23:30:00 -0500" is 1 December), or
    a date written out ("April 28, 2025"); None for what is not a date."""
    if not value:
        return None
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text).date()
    except (TypeError, ValueError, IndexError):
        return find_date(text)


def _first_words(body: str) -> str:
    first = body.split("\n", 1)[0]
    return first if len(first) <= 100 else first[:97].rsplit(" ", 1)[0] + "..."


PARSERS: dict[str, Callable[..., list[Article]]] = {
    ".txt": read_text,
    ".text": read_text,
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
}


def sniff_format(data: bytes, content_type: str = "") -> str:
    """The extension to read bytes with when there is no file name (stdin, URLs)."""
    content_type = content_type.lower()
    head = data[:2048].lstrip().lower()
    if "pdf" in content_type or head.startswith(b"%pdf"):
        return ".pdf"
    if "html" in content_type or head.startswith((b"<!doctype html", b"<html")) or (
        head.startswith(b"<") and b"<p" in data[:20000].lower()
    ):
        return ".html"
    if "ndjson" in content_type or "jsonl" in content_type or head.startswith(b"{"):
        return ".jsonl"
    if "markdown" in content_type:
        return ".md"
    return ".txt"

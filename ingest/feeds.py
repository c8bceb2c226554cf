"""Feeds and sitemaps to articles: RSS 2.0, Atom, JSON Feed, sitemaps, sitemap indexes
and Google News sitemaps.

    python -m ingest feed URL...

Each entry's page is fetched and extracted as URL ingest does (trafilatura), through
the same fetch guard. The feed's own metadata fills what the page lacks (title,
published day in the feed's own time zone, author, outlet: the feed's title). An entry
whose page cannot be fetched keeps the feed's summary, marked as such. Reading is
conditional: a feed's ETag / Last-Modified are kept (`FeedState`), so an unchanged
feed costs one 304; an entry already read with the same stamp is not fetched again,
and an entry whose stamp changed is read again and becomes an update of its article
(same URL, same story).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from xml.sax import SAXException

from filelock import FileLock

from ingest.fetch import Fetched, FetchPolicy, fetch_if_changed
from ingest.pipeline import Ingestor, Report, Result, _take, read_source
from ingest.readers import SourceError, parse_date
from ingest.sources import Source
from rag.files import replace_text
from rag.models import Article
from rag.settings import Settings
from rag.store import ArticleStore
from rag.streams import Streamed

logger = logging.getLogger(__name__)
MAX_ENTRIES = 200  # entries read per feed per run, newest first: a runaway feed is bounded
MAX_SITEMAPS = 50  # child sitemaps read from one index
FETCHES = 2  # pages fetched at once (a feed's pages are on its own host, mostly)
SUMMARY_NOTE = "feed summary only: the page could not be fetched"
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
_NEWS_NS = "{http://www.google.com/schemas/sitemap-news/0.9}"


class FeedError(SourceError):
    """A feed that cannot be read; the message is one line."""


@dataclass
class Entry:
    key: str  # the entry's id, else its link
    link: str | None
    title: str = ""
    published: date | None = None  # the day in the feed's own time zone
    stamp: str = ""  # changes when the entry does (its updated date, else its content)
    authors: list[str] = field(default_factory=list)
    summary: str = ""  # plain text


@dataclass
class Feed:
    kind: str  # rss, atom, json, sitemap, sitemap index
    title: str | None = None
    entries: list[Entry] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)  # an index's children
    notes: list[str] = field(default_factory=list)


# -- parsing ----------------------------------------------------------------------------


def parse(data: bytes, url: str, content_type: str = "") -> Feed:
    """A feed or sitemap from its bytes; FeedError when it is neither."""
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        return _json_feed(data)
    if re.search(rb"<(?:\w+:)?(urlset|sitemapindex)\b", data[:4096]):
        return _sitemap(data)
    return _xml_feed(data, url, content_type)


def _xml_feed(data: bytes, url: str, content_type: str) -> Feed:
    import feedparser

    with warnings.catch_warnings():  # its notice that `updated` falls back to `published`
        warnings.simplefilter("ignore", DeprecationWarning)
        return _read_xml_feed(feedparser.parse(data, response_headers={
            "content-location": url, "content-type": content_type or "application/xml"}))


def _read_xml_feed(parsed: Any) -> Feed:  # noqa: ANN401 - feedparser's dict
    version = str(parsed.get("version") or "")
    exc = parsed.get("bozo_exception")
    # Only broken XML counts: feedparser also flags a missing or odd content type.
    problem = _problem(exc) if parsed.bozo and isinstance(exc, SAXException) else ""
    if problem and not parsed.entries:
        raise FeedError(f"not a readable feed: malformed XML ({problem})")
    if not version and not parsed.entries:
        raise FeedError("not a feed (no RSS, Atom or JSON Feed, and no sitemap)")
    feed = Feed(kind="atom" if version.startswith("atom") else "rss",
                title=_clean(parsed.feed.get("title")) or None)
    if problem:
        feed.notes.append(f"malformed XML ({problem}): read what could be read")
    for item in parsed.entries:
        link = item.get("link") or None
        raw = item.get("published") or item.get("updated") or item.get("created")
        summary = item.get("summary") or ""
        if not summary and item.get("content"):
            summary = item["content"][0].get("value", "")
        authors = [a.get("name") for a in item.get("authors", []) if a.get("name")]
        if not authors and item.get("author"):
            authors = [item["author"]]
        entry = Entry(key=str(item.get("id") or link or ""), link=link,
                      title=_clean(item.get("title")), published=_day(raw),
                      authors=[_clean(a) for a in authors],
                      summary=_text(summary))
        entry.stamp = str(item.get("updated") or "") or _digest(entry)
        if entry.key:
            feed.entries.append(entry)
    return feed


def _problem(exc: Any) -> str:  # noqa: ANN401
    """feedparser's complaint as a few words and where: "line 3: mismatched tag"."""
    what = " ".join(str(getattr(exc, "getMessage", lambda: exc)() or exc).split())[:120]
    line = getattr(exc, "getLineNumber", lambda: None)()
    return f"line {line}: {what}" if line else what


def _json_feed(data: bytes) -> Feed:
    """JSON Feed 1.0/1.1 by hand: feedparser 6 reads only XML, and the format is a few
    documented keys (jsonfeed.org/version/1.1)."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise FeedError(f"not a readable JSON Feed: {exc}") from None
    if not isinstance(doc, dict) or "jsonfeed.org" not in str(doc.get("version", "")):
        raise FeedError("not a JSON Feed (no jsonfeed.org version)")
    feed = Feed(kind="json", title=_clean(doc.get("title")) or None)
    for item in doc.get("items") or []:
        if not isinstance(item, dict):
            continue
        link = item.get("url") or item.get("external_url") or None
        people = item.get("authors") or ([item["author"]] if item.get("author") else [])
        summary = item.get("content_text") or item.get("summary") or \
            _text(item.get("content_html") or "")
        entry = Entry(key=str(item.get("id") or link or ""), link=link,
                      title=_clean(item.get("title")),
                      published=_day(item.get("date_published") or item.get("date_modified")),
                      authors=[_clean(p.get("name")) for p in people
                               if isinstance(p, dict) and p.get("name")],
                      summary=" ".join(str(summary).split()))
        entry.stamp = str(item.get("date_modified") or "") or _digest(entry)
        if entry.key:
            feed.entries.append(entry)
    return feed


def _sitemap(data: bytes) -> Feed:
    try:
        root = ET.fromstring(data)  # noqa: S314 - expat refuses entity expansion bombs
    except ET.ParseError as exc:
        raise FeedError(f"not a readable sitemap: {exc}") from None
    tag = root.tag.removeprefix(_SITEMAP_NS)
    if tag == "sitemapindex":
        locs = [(s.findtext(f"{_SITEMAP_NS}loc") or "").strip()
                for s in root.iter(f"{_SITEMAP_NS}sitemap")]
        return Feed(kind="sitemap index", sitemaps=[u for u in locs if u])
    feed = Feed(kind="sitemap")
    for node in root.iter(f"{_SITEMAP_NS}url"):
        loc = (node.findtext(f"{_SITEMAP_NS}loc") or "").strip()
        if not loc:
            continue
        news = node.find(f"{_NEWS_NS}news")
        title, published, outlet = "", None, None
        if news is not None:
            title = _clean(news.findtext(f"{_NEWS_NS}title"))
            published = _day(news.findtext(f"{_NEWS_NS}publication_date"))
            outlet = _clean(news.findtext(f"{_NEWS_NS}publication/{_NEWS_NS}name")) or None
            feed.title = feed.title or outlet
        lastmod = (node.findtext(f"{_SITEMAP_NS}lastmod") or "").strip()
        feed.entries.append(Entry(key=loc, link=loc, title=title, published=published,
                                  stamp=lastmod or title))
    return feed


def _day(raw: Any) -> date | None:  # noqa: ANN401
    """The day a feed's date names, in its own time zone (`parse_date`, as the
    readers read metadata dates); a date that is not one is left out, and logged."""
    day = parse_date(raw)
    if day is None and str(raw or "").strip():
        logger.info("feed date %r is not a date; left out", str(raw)[:60])
    return day


def _clean(value: Any) -> str:  # noqa: ANN401
    return _text(str(value or ""))


def _text(html: str) -> str:
    """A summary's plain text (feeds put HTML in it)."""
    if "<" not in html:
        return " ".join(html.split())
    import lxml.html

    try:
        return " ".join(lxml.html.fromstring(html).text_content().split())
    except (ValueError, lxml.etree.ParserError):
        return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _digest(entry: Entry) -> str:
    payload = json.dumps([entry.title, entry.summary, str(entry.published)])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# -- what was read before ----------------------------------------------------------------


@dataclass
class FeedRecord:
    etag: str | None = None
    last_modified: str | None = None
    entries: dict[str, str] = field(default_factory=dict)  # entry key -> stamp read
    last_read: str | None = None
    last_error: str | None = None


class FeedState:
    """Per feed URL: its validators, the entries read (with their stamps), when it was
    last read and its last error. One JSON file beside the store, replaced whole under
    a file lock (the CLI and the app's watcher may both read feeds)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = FileLock(str(path) + ".lock", timeout=60)

    @classmethod
    def of(cls, settings: Settings) -> FeedState:
        return cls(Path(settings.data_dir) / "feeds" / "state.json")

    def load(self) -> dict[str, FeedRecord]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("feed state %s unreadable (%s): every feed is read afresh",
                           self.path, exc)
            return {}
        return {url: FeedRecord(**rec) for url, rec in raw.items()}

    def update(self, url: str, change: Callable[[FeedRecord], None]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            records = self.load()
            change(records.setdefault(url, FeedRecord()))
            replace_text(self.path, json.dumps({u: asdict(r) for u, r in records.items()},
                                               indent=1))


# -- reading a feed into the store --------------------------------------------------------


@dataclass
class FeedReport:
    url: str
    kind: str = ""
    entries: int = 0
    read: int = 0  # entries whose pages were fetched this time
    seen: int = 0  # entries read before, unchanged: nothing fetched
    not_modified: bool = False
    stopped: bool = False  # a stop came before every entry was read
    error: str = ""
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.error:
            return f"feed failed {self.url}: {self.error}"
        if self.not_modified:
            return f"feed       {self.url}: not modified since the last read"
        notes = [*self.notes, *(["stopped before the rest"] if self.stopped else [])]
        extra = f" ({'; '.join(notes)})" if notes else ""
        return (f"feed       {self.url}: {self.kind}, {self.entries} entries, {self.read} read, "
                f"{self.seen} already read{extra}")


def read_feeds(urls: list[str], store: ArticleStore, settings: Settings, *,
               outlet: str | None = None, policy: FetchPolicy | None = None,
               max_entries: int = MAX_ENTRIES, fetches: int = FETCHES,
               on_feed: Callable[[FeedReport], None] | None = None,
               stop: threading.Event | None = None) -> Streamed[Result, Report]:
    """Each feed's new and changed entries as articles, a result each as it is final;
    `.result` is the report. `on_feed` gets each feed's own report. Closing the stream
    stops between entries: what was written stays, the feed's state is not advanced
    past what was (so the next read fetches the rest). `stop`, once set, ends the read
    after the entry in hand, writing what was read (a watcher's clean stop)."""
    policy = policy or FetchPolicy.from_settings(settings)
    return Streamed(_read_feeds(urls, store, settings, outlet, policy, max_entries,
                                fetches, on_feed or (lambda report: None), stop))


def _read_feeds(urls: list[str], store: ArticleStore, settings: Settings,
                outlet: str | None, policy: FetchPolicy, max_entries: int, fetches: int,
                on_feed: Callable[[FeedReport], None], stop: threading.Event | None
                ) -> Generator[Result, None, Report]:
    report = Report()
    report.recovered = store.recover(settings.write_wait)
    final: list[Result] = []

    def done(result: Result) -> None:
        report.results.append(result)
        final.append(result)

    started = time.perf_counter()
    ingestor = Ingestor(store, settings, on_done=done)
    state = FeedState.of(settings)
    for url in urls:
        feed_report = FeedReport(url)
        try:
            yield from _read_feed(url, ingestor, settings, policy, state, max_entries,
                                  fetches, feed_report, final, stop, outlet)
        except SourceError as exc:
            feed_report.error = str(exc)
            state.update(url, lambda r, e=str(exc): _failed(r, e))
        on_feed(feed_report)
        if stop is not None and stop.is_set():
            break
    ingestor.flush()
    yield from _take(final)
    report.seconds = time.perf_counter() - started
    return report


def _read_feed(url: str, ingestor: Ingestor, settings: Settings, policy: FetchPolicy,
               state: FeedState, max_entries: int, fetches: int, report: FeedReport,
               final: list[Result], stop: threading.Event | None, outlet: str | None
               ) -> Generator[Result, None, None]:
    record = state.load().get(url, FeedRecord())
    got = fetch_if_changed(url, settings.max_file_bytes, settings.fetch_timeout, policy,
                           record.etag, record.last_modified)
    if got.status == 304:
        report.not_modified = True
        state.update(url, _read_now)
        return
    feed = parse(got.body, got.url, got.content_type)
    if feed.kind == "sitemap index":
        feed = _children(feed, settings, policy)
    report.kind, report.notes = feed.kind, list(feed.notes)
    entries = _newest(feed.entries)
    report.entries = len(entries)
    if len(entries) > max_entries:
        report.notes.append(f"{len(entries)} entries: read the newest {max_entries}")
        entries = entries[:max_entries]
    read: dict[str, str] = {}
    fresh = [e for e in entries if record.entries.get(e.key) != e.stamp]
    report.seen = len(entries) - len(fresh)
    # Pages are fetched `fetches` at a time (all of a feed's pages are usually on one
    # host: this is the per-host bound); they are added to the store one by one, in order.
    pool = ThreadPoolExecutor(max_workers=fetches, thread_name_prefix="feed-page")
    try:
        for entry, (article, failure) in zip(
                fresh, pool.map(lambda e: _page(e, settings, policy), fresh), strict=True):
            report.read += 1
            _add_entry(entry, feed, ingestor, article, failure, outlet)
            if article is not None or not entry.link:
                read[entry.key] = entry.stamp  # a page not had is tried again next time
            yield from _take(final)
            if stop is not None and stop.is_set() and len(read) < len(fresh):
                report.stopped = True
                break
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # stopped: fetch no further pages

    listed = {e.key for e in feed.entries}

    def remember(rec: FeedRecord) -> None:
        if not report.stopped:  # validators only once every entry was read
            rec.etag, rec.last_modified = got.etag, got.last_modified
        # Only the entries the feed still lists: the state of a feed followed for years
        # stays the size of the feed, not of everything it ever carried.
        rec.entries = {k: s for k, s in rec.entries.items() if k in listed} | read
        _read_now(rec)

    ingestor.flush()  # written before the state says so: a crash re-reads, never skips
    yield from _take(final)
    state.update(url, remember)


def _children(index: Feed, settings: Settings, policy: FetchPolicy) -> Feed:
    merged = Feed(kind="sitemap index")
    if len(index.sitemaps) > MAX_SITEMAPS:
        merged.notes.append(f"{len(index.sitemaps)} sitemaps: read the first {MAX_SITEMAPS}")
    for child in index.sitemaps[:MAX_SITEMAPS]:
        try:
            got: Fetched = fetch_if_changed(child, settings.max_file_bytes,
                                            settings.fetch_timeout, policy)
            part = parse(got.body, got.url, got.content_type)
        except SourceError as exc:
            merged.notes.append(f"sitemap {child} failed: {exc}")
            continue
        merged.title = merged.title or part.title
        merged.entries.extend(part.entries)
    return merged


def _newest(entries: list[Entry]) -> list[Entry]:
    """Newest first (undated last, in feed order); each key once."""
    unique = list({e.key: e for e in reversed(entries)}.values())[::-1]
    return sorted(unique, key=lambda e: e.published or date.min, reverse=True)


def _page(entry: Entry, settings: Settings, policy: FetchPolicy
          ) -> tuple[Article | None, str]:
    """The entry's page as an article, or why there is none (run in a worker thread)."""
    if not entry.link:
        return None, "the entry has no link"
    try:
        items = read_source(Source("url", entry.link, entry.link), settings, policy=policy)
    except SourceError as exc:
        return None, str(exc)
    except Exception as exc:  # a page that chokes the extractor must not stop the feed
        logger.debug("reading %s failed", entry.link, exc_info=True)
        return None, f"unexpected error ({type(exc).__name__})"
    article = next((a for _, a in items if isinstance(a, Article)), None)
    if article is None:
        return None, str(items[0][1]) if items else "no article in the page"
    return article, ""


def _add_entry(entry: Entry, feed: Feed, ingestor: Ingestor, article: Article | None,
               failure: str, outlet: str | None) -> None:
    """The page's article with the feed's metadata, else the feed's summary, marked."""
    label = entry.link or entry.key
    if article is None:
        if not entry.summary:
            ingestor.on_done(Result(label, "failed", reason=failure))
            return
        article = Article(text=entry.summary, url=entry.link, feed_summary=True,
                          notes=[f"{SUMMARY_NOTE} ({failure})"])
    _fill(article, entry, outlet or feed.title)
    ingestor.add(article, label)


def _fill(article: Article, entry: Entry, outlet: str | None) -> None:
    """The feed's metadata where the page gave none. `outlet`: the one configured for
    the feed, else the feed's title."""
    if entry.title and (not article.title or article.title == article.url):
        article.title = entry.title
    if article.published is None and entry.published is not None:
        article.published = entry.published
    if not article.authors and entry.authors:
        article.authors = list(entry.authors)
    if outlet and (not article.outlet or _host_like(article.outlet, article.url)):
        article.outlet = outlet  # over a page's bare host name


def _host_like(outlet: str, url: str | None) -> bool:
    """An outlet that is only the page's host (what extraction falls back to)."""
    from urllib.parse import urlsplit

    host = (urlsplit(url or "").netloc or "").lower().removeprefix("www.")
    return bool(host) and outlet.lower().removeprefix("www.") in (host, host.split(":")[0])


def _read_now(record: FeedRecord) -> None:
    record.last_read = datetime.now(UTC).replace(microsecond=0).isoformat()
    record.last_error = None


def _failed(record: FeedRecord, error: str) -> None:
    record.last_error = error
    record.last_read = datetime.now(UTC).replace(microsecond=0).isoformat()


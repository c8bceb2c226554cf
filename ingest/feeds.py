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

The bytes are parsed by `ingest.feedparse` (types checked, time bounded). One feed's
failure of any kind, expected (`SourceError`: one line) or not (a bug: "unexpected
error", logged with its traceback), is that feed's report line and its `last_error` in
the state; the other feeds are read all the same.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from filelock import FileLock

from ingest.feedparse import Entry, Feed, FeedError, parse
from ingest.fetch import Fetched, FetchPolicy, fetch_if_changed
from ingest.formats import SourceError
from ingest.ingestor import Ingestor
from ingest.pipeline import _take, read_source
from ingest.results import Report, Result
from ingest.sources import Source
from rag.files import replace_text
from rag.records import Article
from rag.settings import Settings
from rag.store.articles import ArticleStore
from rag.streams import Streamed

logger = logging.getLogger(__name__)
MAX_ENTRIES = 200  # entries read per feed per run, newest first: a runaway feed is bounded
MAX_SITEMAPS = 50  # child sitemaps read from one index
FETCHES = 2  # pages fetched at once (a feed's pages are on its own host, mostly)
SUMMARY_NOTE = "feed summary only: the page could not be fetched"
__all__ = ["Entry", "Feed", "FeedError", "FeedRecord", "FeedReport", "FeedState", "parse",
           "read_feeds"]


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
        records: dict[str, FeedRecord] = {}
        for url, rec in (raw.items() if isinstance(raw, dict) else ()):
            try:
                records[url] = FeedRecord(**rec)
            except TypeError:  # an edited or foreign record: that feed is read afresh
                logger.warning("feed state %s: the record of %s is unreadable; read afresh",
                               self.path, str(url)[:100])
        return records

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
        except Exception as exc:  # a bug must cost this feed, never the others
            logger.warning("reading the feed %s failed unexpectedly", url, exc_info=True)
            feed_report.error = f"unexpected error ({type(exc).__name__}); the log has the details"
        if feed_report.error:
            try:
                state.update(url, lambda r, e=feed_report.error: _failed(r, e))
            except Exception:  # the state not written: said, the next read tries again
                logger.warning("the state of feed %s could not be written", url,
                               exc_info=True)
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


"""Following feeds: `python -m ingest watch [FEEDS_FILE]` polls each feed on its
interval, with backoff on errors and jitter, and stops cleanly on Ctrl-C or SIGTERM.

The feeds file (default `<data dir>/feeds/feeds.txt`, RAG_FEEDS_FILE; the app's Feeds
panel edits the same file) has one feed a line, optionally its interval and outlet:

    https://www.theguardian.com/world/rss
    https://feeds.bbci.co.uk/news/rss.xml  30m  BBC News
    # a comment

A feed that fails is tried again after twice its interval, then four times, up to six
hours; each wait is spread by ±10% so feeds added together drift apart instead of
polling a host in step. A stop is checked between entries: an article is written
whole or not at all, and the feed's state only records what was written.

Nothing one feed does stops the others: a feed that fails in any way (a hostile feed,
a bug) is that feed's failure, said in one line, backed off and recorded in its state.
A line of the feeds file that is not a feed line is reported (`FeedsFile.problems`, by
line number, never by the file's path) and skipped; the other lines are read, and
`save_feeds` keeps it as written. A feed line never holds a control character or a line
break (`FeedLine` refuses them), so nothing written through it adds a line.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock

from ingest.feedparse import CONTROLS
from ingest.feeds import FETCHES, MAX_ENTRIES, FeedRecord, FeedReport, FeedState, read_feeds
from ingest.fetch import FetchPolicy
from ingest.sources import is_url
from rag.errors import UsageError
from rag.files import replace_text
from rag.settings import Settings
from rag.store.articles import ArticleStore

logger = logging.getLogger(__name__)
DEFAULT_INTERVAL = 15 * 60.0
MIN_INTERVAL = 60.0  # politeness: no feed is polled more often than once a minute
MAX_BACKOFF = 6 * 3600.0
JITTER = 0.1
_INTERVAL = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class FeedLine:
    url: str
    interval: float = DEFAULT_INTERVAL
    outlet: str | None = None

    def __post_init__(self) -> None:
        """A line that reads back as itself: ValueError for a field that would not."""
        if not is_url(self.url) or CONTROLS.search(self.url) \
                or any(c.isspace() for c in self.url):
            raise UsageError(f"{self.url[:80]!r} is not an http(s) URL")
        outlet = self.outlet or ""
        if CONTROLS.search(outlet):
            raise UsageError("the outlet holds a line break or a control character")
        if "#" in outlet:
            raise UsageError("the outlet can't hold '#' (the feeds file reads the rest of "
                             "the line as a comment)")

    @property
    def every(self) -> str:
        """The interval as the feeds file writes it: `15m`."""
        minutes = self.interval / 60
        return f"{minutes:g}m" if minutes >= 1 else f"{self.interval:g}s"

    def text(self) -> str:
        return " ".join(x for x in (self.url, self.every, self.outlet or "") if x)


def feeds_path(settings: Settings) -> Path:
    return Path(settings.feeds_file or Path(settings.data_dir) / "feeds" / "feeds.txt")


def parse_interval(text: str) -> float:
    match = _INTERVAL.fullmatch(text.strip().lower())
    if not match:
        raise UsageError(f"{text!r} is not an interval (e.g. 90s, 15m, 2h, 1d)")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < MIN_INTERVAL:
        raise UsageError(f"{text!r} is shorter than the shortest interval, "
                         f"{MIN_INTERVAL:g} s")
    return seconds


def parse_line(line: str, where: str = "feeds file") -> FeedLine | None:
    """One line of a feeds file; None for a blank or comment line."""
    words = line.split("#", 1)[0].split() if not line.lstrip().startswith("#") else []
    if not words:
        return None
    url, rest = words[0], words[1:]
    if not is_url(url):
        raise UsageError(f"{where}: {url[:80]!r} is not an http(s) URL")
    interval = DEFAULT_INTERVAL
    try:
        if rest and _INTERVAL.fullmatch(rest[0].lower()):
            interval = parse_interval(rest.pop(0))
        return FeedLine(url, interval, " ".join(rest) or None)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None


@dataclass
class FeedsFile:
    feeds: list[FeedLine]
    problems: list[str]  # "line 3: 'x' is not an http(s) URL; skipped", no path


def read_feeds_file(path: Path) -> FeedsFile:
    """The feeds file's feeds (each URL once, the first line naming it wins) and its
    lines that are not feed lines, each said by number (they are skipped). A file that
    is missing names no feeds; one that can't be read at all is a problem."""
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return FeedsFile([], [])
    except OSError as exc:
        return FeedsFile([], [f"the feeds file can't be read ({exc.strerror})"])
    feeds: dict[str, FeedLine] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            found = parse_line(line, f"line {number}")
        except ValueError as exc:
            problems.append(f"{exc}; skipped")
            continue
        if found is not None:
            feeds.setdefault(found.url, found)
    return FeedsFile(list(feeds.values()), problems)


def load_feeds(path: Path) -> list[FeedLine]:
    """The feeds file's feeds; lines that are not feed lines are skipped (see
    `read_feeds_file` for what they are)."""
    return read_feeds_file(path).feeds


def save_feeds(path: Path, change: Callable[[list[FeedLine]], list[FeedLine]]) -> list[FeedLine]:
    """Rewrites the feeds file with `change` applied, under a lock (the app and a person
    with an editor may both change it). Comments, blank lines and the lines of feeds
    left as they were are kept as written; a changed feed's line is rewritten in place,
    a new one goes at the end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=30):
        before = load_feeds(path)
        feeds = change(before)
        wanted = {f.url: f for f in feeds}
        unchanged = {f.url for f in before if wanted.get(f.url) == f}
        lines: list[str] = []
        placed: set[str] = set()
        old = (path.read_bytes().decode("utf-8", "replace").splitlines()
               if path.exists() else [])
        for line in old:
            try:
                found = parse_line(line)
            except ValueError:
                found = None  # not a feed line: kept as written, reported when read
            if found is None:
                lines.append(line)  # a comment, a blank line or a line not understood
            elif found.url in wanted and found.url not in placed:
                placed.add(found.url)
                lines.append(line if found.url in unchanged else wanted[found.url].text())
        lines += [f.text() for f in feeds if f.url not in placed]
        replace_text(path, "".join(line + "\n" for line in lines))
    return feeds


class Watcher:
    """Polls the feeds of a feeds file until `stop` is set. `say` gets one line per new
    or updated article and per failure (the CLI prints them, the app logs them)."""

    def __init__(self, store: ArticleStore, settings: Settings, path: Path,
                 stop: threading.Event, say: Callable[[str], None] = logger.info,
                 fetches: int = FETCHES, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.store, self.settings, self.path, self.stop = store, settings, path, stop
        self.say, self.fetches, self.clock = say, fetches, clock
        self.rng = rng or random.Random()
        self.policy = FetchPolicy.from_settings(settings)
        self.due: dict[str, float] = {}
        self.failures: dict[str, int] = {}
        self.problems: list[str] = []  # the feeds file's lines skipped, as last read
        self.wake = threading.Event()  # set: look at the feeds file now (a feed was added)

    def run(self, once: bool = False) -> None:
        """Until stopped (`once`: each feed read once, then return)."""
        while not self.stop.is_set():
            read = read_feeds_file(self.path)
            if read.problems != self.problems:  # said once, not at every round
                for problem in read.problems:
                    self.say(f"feeds file {problem}")
                self.problems = read.problems
            feeds = read.feeds
            now = self.clock()
            for feed in feeds:
                if self.stop.is_set():
                    return
                if self.due.get(feed.url, now) <= now:
                    self.poll(feed)
            if once:
                return
            nearest = min((self.due.get(f.url, now) for f in feeds), default=now + 30)
            self.wake.wait(max(1.0, min(nearest - self.clock(), 30.0)))
            self.wake.clear()

    def poll(self, feed: FeedLine) -> FeedReport | None:
        """Reads one feed; schedules its next read (its interval, or a backoff). Any
        failure, even one outside the feed's own reading (the store, a bug), is this
        feed's: said, recorded and backed off; it never reaches `run`."""
        seen: list[FeedReport] = []
        try:
            stream = read_feeds([feed.url], self.store, self.settings, outlet=feed.outlet,
                                policy=self.policy, max_entries=MAX_ENTRIES,
                                fetches=self.fetches, on_feed=seen.append, stop=self.stop)
            try:
                for result in stream:
                    if result.status in ("added", "updated", "failed"):
                        self.say(result.line())
            finally:
                stream.close()
        except Exception as exc:
            logger.warning("reading the feed %s failed unexpectedly", feed.url,
                           exc_info=True)
            seen[:] = [FeedReport(feed.url, error=f"unexpected error ({type(exc).__name__}); "
                                  "the log has the details")]
            self._record(feed.url, seen[0].error)
        if self.stop.is_set():
            return seen[0] if seen else None  # stopped: the next run reads the rest
        report = seen[0] if seen else None
        failed = report is None or bool(report.error)
        if failed:
            self.failures[feed.url] = self.failures.get(feed.url, 0) + 1
            self.say(report.line() if report else f"feed failed {feed.url}")
        else:
            self.failures.pop(feed.url, None)
        self.due[feed.url] = self.clock() + self.wait(feed)
        return report

    def _record(self, url: str, error: str) -> None:
        def failed(record: FeedRecord) -> None:
            record.last_error = error
            record.last_read = datetime.now(UTC).replace(microsecond=0).isoformat()

        try:
            FeedState.of(self.settings).update(url, failed)
        except Exception:  # the state file itself: logged; the feed is backed off anyway
            logger.warning("the state of feed %s could not be written", url, exc_info=True)

    def wait(self, feed: FeedLine) -> float:
        """Seconds until the feed's next read: its interval, doubled per failure in a
        row (at most MAX_BACKOFF), spread by ±JITTER."""
        failures = self.failures.get(feed.url, 0)
        base = min(feed.interval * 2 ** failures, max(MAX_BACKOFF, feed.interval))
        return base * self.rng.uniform(1 - JITTER, 1 + JITTER)

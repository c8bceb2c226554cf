"""The app's feeds: the feeds file the Feeds panel edits, and the watcher that follows
it in a background thread (`ingest.watch.Watcher`, as `python -m ingest watch` runs it).

The watcher starts with the app when the file names feeds, or when an editor adds the
first one; adding a feed wakes it, so the feed is read within seconds, not at the next
round. New articles, failures and the feeds' last read and last error go to the log
and the panel (`FeedState`). Feeds are fetched through the same fetch guard as URLs a
web user adds: no private or loopback addresses unless RAG_FETCH_ALLOW opts them in.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ingest.feeds import FeedState
from ingest.watch import FeedLine, Watcher, feeds_path, load_feeds, parse_interval, save_feeds
from rag.store import ArticleStore
from web.limits import URL_CHARS, Limits, is_web_url

logger = logging.getLogger(__name__)
FEED_COLUMNS = ["Feed", "Every", "Outlet", "Last read", "Last error"]
MAX_FEEDS = 500  # far above any newsroom's list: only a runaway form is stopped


class Feeds:
    def __init__(self, store: ArticleStore, limits: Limits) -> None:
        self.store, self.settings, self.limits = store, store.settings, limits
        self.path = feeds_path(self.settings)
        self.state = FeedState.of(self.settings)
        self.stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: Watcher | None = None
        self._lock = threading.Lock()

    # -- the list ---------------------------------------------------------------------

    def rows(self) -> list[list[Any]]:
        records = self.state.load()
        rows = []
        for feed in self.feeds():
            rec = records.get(feed.url)
            rows.append([feed.url, feed.every, feed.outlet or "",
                         (rec.last_read or "") if rec else "never",
                         (rec.last_error or "") if rec else ""])
        return rows

    def feeds(self) -> list[FeedLine]:
        try:
            return load_feeds(self.path)
        except ValueError as exc:
            logger.warning("%s", exc)
            return []

    def add(self, url: str, every: str, outlet: str) -> str:
        """Adds a feed (or changes its interval and outlet); one line on what was done."""
        url = (url or "").strip()
        if not is_web_url(url) or len(url) > URL_CHARS or any(c.isspace() for c in url):
            raise ValueError("give the feed's http:// or https:// URL")
        interval = parse_interval(every.strip()) if (every or "").strip() else None
        outlet = self.limits.field(outlet, "outlet").strip()
        line = FeedLine(url, interval or FeedLine(url).interval, outlet or None)

        def change(feeds: list[FeedLine]) -> list[FeedLine]:
            others = [f for f in feeds if f.url != url]
            if len(others) >= MAX_FEEDS:
                raise ValueError(f"the app follows at most {MAX_FEEDS} feeds")
            return [*others, line]

        existed = any(f.url == url for f in self.feeds())
        save_feeds(self.path, change)
        self.start()
        if self._watcher is not None:
            self._watcher.due.pop(url, None)  # read it now, not at the next round
        self.wake()
        return f"{'changed' if existed else 'added'} {line.text()}: it is read within seconds"

    def remove(self, url: str | None) -> str:
        if not url:
            raise ValueError("pick a feed to remove")
        if not any(f.url == url for f in self.feeds()):
            raise ValueError("that feed is not followed (it may have been removed already)")
        save_feeds(self.path, lambda feeds: [f for f in feeds if f.url != url])
        return f"removed {url}; its articles stay in the library"

    # -- the watcher ------------------------------------------------------------------

    def start(self) -> bool:
        """Runs the watcher in a thread of its own, once; False when there is nothing
        to follow yet."""
        with self._lock:
            if self._thread is not None or not self.feeds():
                return self._thread is not None
            self._watcher = Watcher(self.store, self.settings, self.path, self.stop,
                                    say=lambda line: logger.info("feeds: %s", line))
            self._thread = threading.Thread(target=self._run, name="feed-watcher",
                                            daemon=True)
            self._thread.start()
            logger.info("following %d feed(s) from %s", len(self.feeds()), self.path)
            return True

    def _run(self) -> None:
        assert self._watcher is not None
        try:
            self._watcher.run()
        except Exception:  # the watcher must never take the app down; it says why
            logger.exception("the feed watcher stopped")

    def wake(self) -> None:
        if self._watcher is not None:
            self._watcher.wake.set()

    def close(self, timeout: float = 30.0) -> None:
        """Stops the watcher after the entry in hand."""
        self.stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)

"""The library's list of articles as the app shows it, kept per store generation.

Listing reads every article record's metadata from Chroma: 65 s for 170,016 articles
(measured on this 2-core machine with an archive build on the other core; ~170 µs a
record plus the cost of each page's offset). A page that listed on every build and
load was not listening 4 minutes after start at 147k articles. So:

- a library of at most `SYNC_LIMIT` articles is listed when asked, as before;
- a larger one is listed by a thread of its own when the store's generation changes,
  and whoever asks meanwhile gets the last list (`stale` says so) or, before the first
  one is done, None: the page then shows the counts and says the list is coming.

A write never waits for a listing, nor a question: `/v1` and MCP do not need one.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from rag.records import StoredArticle
from rag.store.articles import ArticleStore

logger = logging.getLogger(__name__)
SYNC_LIMIT = 20_000  # articles listed on the asker's own time (under 10 s measured)


@dataclass(frozen=True)
class Listing:
    """The articles of one store generation, newest first."""

    generation: str
    articles: list[StoredArticle]


class Catalog:
    """The last listing of a store's articles, refreshed when the store changes."""

    def __init__(self, store: ArticleStore, sync_limit: int = SYNC_LIMIT) -> None:
        self.store = store
        self.sync_limit = sync_limit
        self._last: Listing | None = None
        self._lock = threading.Lock()  # one listing at a time
        self._thread: threading.Thread | None = None

    @property
    def stale(self) -> bool:
        """The last listing is of an older generation than the store's (a thread is
        listing the new one)."""
        last = self._last
        return last is None or last.generation != self.store.generation()

    def articles(self, wait: bool = False) -> list[StoredArticle] | None:
        """The articles, newest first: the current listing, or (a large library whose
        listing is under way, unless `wait`) the last one, or None before any."""
        self.store.sync()  # another process may have added or removed some
        generation = self.store.generation()
        last = self._last
        if last is not None and last.generation == generation:
            return last.articles
        if wait or (last is not None and len(last.articles) <= self.sync_limit) or (
                last is None and self._count() <= self.sync_limit):
            return self._list(generation).articles
        self._list_in_background()
        return None if last is None else last.articles

    def _count(self) -> int:
        return self.store.articles.count() if self.store.exists else 0

    def _list(self, generation: str) -> Listing:
        with self._lock:
            last = self._last
            if last is not None and last.generation == generation:
                return last  # listed by another thread meanwhile
            started = time.perf_counter()
            # a write may land while we list: the generation read before it is the
            # one this listing is at least as new as, so the next ask lists again
            listing = Listing(generation, self.store.list_articles())
            self._last = listing
            took = time.perf_counter() - started
            if took > 1:
                logger.info("listed %d articles in %.1f s", len(listing.articles), took)
            return listing

    def _list_in_background(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return  # it reads the generation again when it is done

        def run() -> None:
            try:
                while True:
                    generation = self.store.generation()
                    self._list(generation)
                    if self.store.generation() == generation:
                        return
            except Exception:  # the next ask starts another; the page keeps the last
                logger.warning("listing the library failed", exc_info=True)

        self._thread = threading.Thread(target=run, name="catalog", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for a listing under way (tests, and a shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)

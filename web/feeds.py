"""The app's feeds: the feeds file the Feeds panel edits, and the watcher that follows
it in a background thread (`ingest.watch.Watcher`, as `python -m ingest watch` runs it).

The watcher starts with the app when the file names feeds, or when an editor adds the
first one; adding a feed wakes it, so the feed is read within seconds, not at the next
round. New articles, failures and the feeds' last read and last error go to the log
and the panel (`FeedState`). Feeds are fetched through the same fetch guard as URLs a
web user adds: no private or loopback addresses unless RAG_FETCH_ALLOW opts them in.

Nothing stops the following: one feed's failure is that feed's (its row's last error),
and the watcher thread is supervised: if it ever dies it is started again (after 5 s,
then longer while it keeps dying) and the panel's status line says when and why. Lines
of the feeds file that are not feed lines are listed there by number and skipped; the
other feeds are listed and can be followed and unfollowed. The fields an editor gives
are checked (no control characters, no line breaks: each feed stays one line), and no
message shows the server's paths.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

from ingest.feeds import FeedState
from ingest.watch import (
    FeedLine,
    Watcher,
    feeds_path,
    parse_interval,
    read_feeds_file,
    save_feeds,
)
from rag.errors import UsageError
from rag.store.articles import ArticleStore
from web.limits import URL_CHARS, Limits, is_web_url

logger = logging.getLogger(__name__)
FEED_COLUMNS = ["Feed", "Every", "Outlet", "Last read", "Last error"]
MAX_FEEDS = 500  # far above any newsroom's list: only a runaway form is stopped
RESTART_WAIT = 5.0  # seconds before a watcher that died is started again, doubled while
MAX_RESTART_WAIT = 300.0  # it keeps dying (a run longer than this resets it)


class Feeds:
    def __init__(self, store: ArticleStore, limits: Limits) -> None:
        self.store, self.settings, self.limits = store, store.settings, limits
        self.path = feeds_path(self.settings)
        self.state = FeedState.of(self.settings)
        self.stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: Watcher | None = None
        self._lock = threading.Lock()
        self.restarts = 0  # times the watcher died and was started again
        self.last_death = ""  # when and why it last died: "2026-12-01 10:00 UTC (KeyError)"

    # -- the list ---------------------------------------------------------------------

    def rows(self) -> list[list[Any]]:
        self.ensure_running()
        records = self.state.load()
        rows = []
        for feed in self.feeds():
            rec = records.get(feed.url)
            rows.append([feed.url, feed.every, feed.outlet or "",
                         (rec.last_read or "") if rec else "never",
                         (rec.last_error or "") if rec else ""])
        return rows

    def feeds(self) -> list[FeedLine]:
        """The feeds followed; lines of the file that are not feed lines are skipped
        (`status` says which)."""
        return read_feeds_file(self.path).feeds

    def status(self) -> str:
        """The panel's status line (Markdown, plain words): the watcher's restarts and
        the feeds file's skipped lines; empty when all is well."""
        self.ensure_running()
        said = []
        if self.restarts:
            said.append(f"The feed watcher stopped unexpectedly ({self.last_death}) and was "
                        f"started again ({self.restarts} time(s) since the app started); "
                        "the log has the details.")
        problems = read_feeds_file(self.path).problems
        if problems:
            shown = "; ".join(_plain(p) for p in problems[:5]) + (
                " …" if len(problems) > 5 else "")
            said.append(f"The feeds file has {len(problems)} line(s) that are not feeds, "
                        f"skipped until an operator fixes them: {shown}.")
        return "\n\n".join(said)

    def add(self, url: str, every: str, outlet: str) -> str:
        """Adds a feed (or changes its interval and outlet); one line on what was done."""
        url = (url or "").strip()
        if not is_web_url(url) or len(url) > URL_CHARS or any(c.isspace() for c in url):
            raise UsageError("give the feed's http:// or https:// URL")
        interval = parse_interval(every.strip()) if (every or "").strip() else None
        outlet = self.limits.field(outlet, "outlet").strip()
        line = FeedLine(url, interval or FeedLine(url).interval, outlet or None)  # checked

        def change(feeds: list[FeedLine]) -> list[FeedLine]:
            others = [f for f in feeds if f.url != url]
            if len(others) >= MAX_FEEDS:
                raise UsageError(f"the app follows at most {MAX_FEEDS} feeds")
            return [*others, line]

        existed = any(f.url == url for f in self.feeds())
        save_feeds(self.path, change)
        self.start()
        self.ensure_running()
        if self._watcher is not None:
            self._watcher.due.pop(url, None)  # read it now, not at the next round
        self.wake()
        return f"{'changed' if existed else 'added'} {line.text()}: it is read within seconds"

    def remove(self, url: str | None) -> str:
        if not url:
            raise UsageError("pick a feed to remove")
        if not any(f.url == url for f in self.feeds()):
            raise UsageError("that feed is not followed (it may have been removed already)")
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
            self._start_thread()
            logger.info("following %d feed(s) from %s", len(self.feeds()), self.path)
            return True

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="feed-watcher", daemon=True)
        self._thread.start()

    def ensure_running(self) -> None:
        """Starts the thread again if it is gone without being stopped (something the
        supervisor in `_run` could not catch ended it)."""
        with self._lock:
            thread = self._thread
            if thread is None or thread.is_alive() or self.stop.is_set():
                return
            self._died("the thread ended")
            logger.warning("the feed watcher's thread had ended; starting it again")
            self._start_thread()

    def _died(self, why: str) -> None:
        self.restarts += 1
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        self.last_death = f"{when}, {why}"

    def _run(self) -> None:
        """The supervisor: runs the watcher until stopped, starting it again whenever it
        dies (the app must never lose its feeds, and never go down with them)."""
        assert self._watcher is not None
        wait = RESTART_WAIT
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                self._watcher.run()
                if self.stop.is_set():
                    return
                why = "it returned without being stopped"
            except Exception as exc:
                why = type(exc).__name__
                logger.exception("the feed watcher stopped; it starts again in %g s", wait)
            self._died(why)
            if time.monotonic() - began > MAX_RESTART_WAIT:
                wait = RESTART_WAIT  # it ran a good while: a new failure, not a loop
            self.stop.wait(wait)
            wait = min(wait * 2, MAX_RESTART_WAIT)

    def wake(self) -> None:
        if self._watcher is not None:
            self._watcher.wake.set()

    def close(self, timeout: float = 30.0) -> None:
        """Stops the watcher after the entry in hand."""
        self.stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)


def _plain(text: str) -> str:
    """Text from the feeds file as plain words in Markdown (its punctuation escaped)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!<>|~])", r"\\\1", text)

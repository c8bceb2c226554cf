"""One writer per store, across processes and machines; processes that only read never wait.

Embedded store: an exclusive `filelock` on `<data dir>/<collection>.writer.lock`. The
operating system drops it when its holder dies (even by kill -9), so a lock that is
held always means a live writer, and whatever a holder finds half-written is a dead
writer's work (`ArticleStore.recover`).

Chroma server: no file is shared between machines, so the lock is a lease record in a
collection of its own, renewed by a heartbeat thread while held; a holder that dies
stops renewing and its lease expires. Chroma has no compare-and-set, but `add` never
overwrites an existing id: whoever's `add` lands first owns the record, and every
contender reads it back to see who that is.

Both kinds are re-entrant within a thread and exclusive between threads, so the app's
library jobs, a CLI and a repair all take turns.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import filelock

from rag.store.connection import StoreError

logger = logging.getLogger(__name__)

Waiting = Callable[[str], None]
_POLL = 0.2


class WriterBusyError(StoreError):
    """Another writer held the store for longer than this one would wait."""


def holder_info(what: str) -> dict[str, Any]:
    """Who holds a lock: shown to whoever waits for it."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "token": uuid.uuid4().hex[:12]}


def describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another writer"
    where = "" if info.get("host") == socket.gethostname() else f" on {info.get('host')}"
    return f"another {info.get('what') or 'writer'} (pid {info.get('pid')}{where})"


class _Reentrant:
    """Per-thread depth over an inter-process lock: the first entry acquires, the last
    exit releases; other threads of this process wait like other processes do."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._gate = threading.Lock()  # one thread of this process contends at a time
        self.info: dict[str, Any] | None = None  # set while this process holds it

    @property
    def depth(self) -> int:
        return getattr(self._local, "depth", 0)

    @contextmanager
    def hold(self, what: str, wait: float | None, on_wait: Waiting | None = None
             ) -> Iterator[bool]:
        """Hold the lock; yields True on the outermost entry (the caller's chance to
        bring the store up to date and recover a dead writer's work)."""
        if self.depth:
            self._local.depth += 1
            try:
                yield False
            finally:
                self._local.depth -= 1
            return
        deadline = None if wait is None else time.monotonic() + max(wait, 0.0)
        if not self._gate.acquire(timeout=-1 if deadline is None else max(wait or 0.0, 0.0)):
            raise WriterBusyError(self.busy_message(wait))
        try:
            info = holder_info(what)
            try:
                self._acquire(info, deadline, on_wait)
            except WriterBusyError:
                raise WriterBusyError(self.busy_message(wait)) from None
            self.info = info
            self._local.depth = 1
            try:
                yield True
            finally:
                self._local.depth = 0
                self.info = None
                self._release()
        finally:
            self._gate.release()

    def busy_message(self, wait: float | None) -> str:
        return (f"the store is busy: {describe(self.holder())} is writing to it"
                f"{f' (waited {wait:g} s)' if wait else ''}; try again when it is done, or "
                "give --wait SECONDS")

    def _wait_line(self, on_wait: Waiting | None, said: list[bool]) -> None:
        if on_wait and not said:
            on_wait(f"waiting for {describe(self.holder())} to finish writing…")
            said.append(True)

    def current(self) -> dict[str, Any] | None:
        """Who holds the lock now (None: nobody), without taking it for long."""
        if self.info:
            return self.info
        if not self._gate.acquire(blocking=False):  # another thread of ours has or wants it
            return self.info or holder_info("writer")
        try:
            return self._probe()
        finally:
            self._gate.release()

    # the kind-specific part
    def holder(self) -> dict[str, Any] | None:
        """What the holder wrote of itself (called while the lock is known to be held)."""
        raise NotImplementedError

    def _probe(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def _acquire(self, info: dict[str, Any], deadline: float | None,
                 on_wait: Waiting | None) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError


class FileWriterLock(_Reentrant):
    """The embedded store's lock: `fcntl`/`flock` through filelock, plus a note of who
    holds it (the note is only for messages; the OS lock is the truth)."""

    def __init__(self, folder: Path, name: str) -> None:
        super().__init__()
        self.path = Path(folder) / f"{name}.writer.lock"
        self.note = Path(folder) / f"{name}.writer.json"
        self._lock = filelock.FileLock(self.path, thread_local=False)

    def holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.note.read_text())
        except (OSError, ValueError):
            return None

    def _probe(self) -> dict[str, Any] | None:
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            return self.holder() or {}
        except OSError:  # cannot even create the lock file: nobody can be writing
            return None
        self._lock.release()
        return None

    def _acquire(self, info: dict[str, Any], deadline: float | None,
                 on_wait: Waiting | None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        said: list[bool] = []
        while True:
            try:
                self._lock.acquire(timeout=0)
                break
            except filelock.Timeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise WriterBusyError(self.busy_message(None)) from None
                self._wait_line(on_wait, said)
                time.sleep(_POLL)
        try:
            self.note.write_text(json.dumps(info))
        except OSError:  # a read-only folder: the lock still holds, only the note is lost
            logger.debug("cannot write %s", self.note, exc_info=True)

    def _release(self) -> None:
        self._lock.release()


class LeaseWriterLock(_Reentrant):
    """The Chroma server's lock: a lease record that a heartbeat renews while held."""

    RECORD = "writer"

    def __init__(self, client: Any, name: str, lease: float = 30.0) -> None:
        super().__init__()
        self.client, self.name, self.lease = client, f"{name}-lock", lease
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._token = ""

    def _collection(self) -> Any:
        # a fixed 1-d vector: Chroma must never reach for its default embedding model
        return self.client.get_or_create_collection(self.name, embedding_function=None)

    def holder(self) -> dict[str, Any] | None:
        got = self._collection().get(ids=[self.RECORD], include=["metadatas"])
        if not got["ids"]:
            return None
        meta = dict(got["metadatas"][0] or {})
        return meta if float(meta.get("expires", 0)) > time.time() else None

    _probe = holder

    def _acquire(self, info: dict[str, Any], deadline: float | None,
                 on_wait: Waiting | None) -> None:
        said: list[bool] = []
        collection = self._collection()
        while True:
            got = collection.get(ids=[self.RECORD], include=["metadatas"])
            meta = dict(got["metadatas"][0] or {}) if got["ids"] else None
            if meta is not None and float(meta.get("expires", 0)) <= time.time():
                logger.info("the writer lease of %s expired; taking it over", describe(meta))
                collection.delete(ids=[self.RECORD], where={"token": meta.get("token", "")})
                meta = None
            if meta is None:
                record = {**info, "expires": time.time() + self.lease}
                try:  # add never overwrites: the first add wins, the others are ignored
                    collection.add(ids=[self.RECORD], embeddings=[[0.0]], metadatas=[record])
                except Exception:  # or refused, depending on the server's version
                    logger.debug("lease add refused", exc_info=True)
                got = collection.get(ids=[self.RECORD], include=["metadatas"])
                if got["ids"] and (got["metadatas"][0] or {}).get("token") == info["token"]:
                    break
            if deadline is not None and time.monotonic() >= deadline:
                raise WriterBusyError(self.busy_message(None))
            self._wait_line(on_wait, said)
            time.sleep(_POLL)
        self._token = info["token"]
        self._stop.clear()
        self._beat = threading.Thread(target=self._renew, name="writer-lease", daemon=True)
        self._beat.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self._collection().update(
                    ids=[self.RECORD], metadatas=[{"expires": time.time() + self.lease}])
            except Exception:  # the server is away: the lease may lapse, the write fails
                logger.warning("could not renew the writer lease", exc_info=True)

    def _release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        try:
            self._collection().delete(ids=[self.RECORD], where={"token": self._token})
        except Exception:  # it expires by itself
            logger.warning("could not release the writer lease", exc_info=True)

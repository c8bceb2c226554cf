"""Chroma clients, one per store per process, and the store's errors in one line each.

Why one shared connection per data folder, reopened when another process wrote: an
embedded Chroma keeps its vector index in the memory of the process that opened it.
A process that goes on using its copy after another process wrote (measured: app and
CLI on one folder) reads "Error finding id", and if it writes, it persists its stale
index over the other's vectors, which are then lost without a word. So every write
happens under the writer lock (`rag.lock`), and a process reopens its client whenever
the store's generation stamp says someone else wrote. A server needs none of this.
"""

from __future__ import annotations

import errno
import logging
import threading
from pathlib import Path
from typing import Any

import chromadb
from chromadb.api import ClientAPI
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings as ChromaSettings

from rag.settings import Settings

logger = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """A store problem the user can fix; the message says how."""


def location(settings: Settings) -> str:
    if settings.chroma_host:
        return f"chroma server {settings.chroma_host}:{settings.chroma_port}"
    return str(Path(settings.data_dir) / "chroma")


def store_error(exc: BaseException, where: str, doing: str) -> StoreError:
    """One line for a failure of the store itself, naming the folder and what to do."""
    text = " ".join(str(exc).split())
    low = text.casefold()
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "disk is full" in low \
            or "no space left" in low:
        why = (f"the disk holding {where} is full while {doing}; free some space and run the "
               "same command again (what was stored before is intact)")
    elif isinstance(exc, PermissionError) or "readonly" in low or "read-only" in low \
            or "permission denied" in low:
        why = (f"{where} cannot be written while {doing} (read-only folder or no "
               "permission); fix its permissions, or point RAG_DATA_DIR / --data-dir at a "
               "writable folder")
    elif "malformed" in low or "not a database" in low or "file is encrypted" in low \
            or "database disk image" in low:
        why = (f"the store at {where} is damaged ({text[:100]}); restore the folder from a "
               "backup, or move it aside and ingest the articles again")
    else:
        why = (f"the store at {where} failed while {doing} ({type(exc).__name__}: "
               f"{text[:140]}); run `python -m ingest check` to see what is wrong")
    return StoreError(why)


def _chroma_settings() -> ChromaSettings:
    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def _server_client(settings: Settings) -> ClientAPI:
    try:
        client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port,
                                     settings=_chroma_settings())
        client.heartbeat()
    except Exception as exc:
        raise StoreError(
            f"cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port}"
            f" ({type(exc).__name__}); start it with `chroma run --path DIR --port "
            f"{settings.chroma_port}` or unset CHROMA_HOST to use the embedded store"
        ) from exc
    return client


def _embedded_client(path: Path) -> ClientAPI:
    try:
        path.mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
        client.list_collections()  # a damaged database says so here, not mid-answer
    except Exception as exc:
        raise store_error(exc, str(path), "opening it") from None
    return client


class Connection:
    """The client of one store in this process. `epoch` counts reopenings, so holders
    of collection handles know to fetch them again."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded = not settings.chroma_host
        self.path = Path(settings.data_dir).resolve() / "chroma"
        self.epoch = 0
        self.seen = ""  # the generation this process last saw or wrote (embedded only)
        self._lock = threading.Lock()
        self._writers: dict[str, Any] = {}
        self.client = (_embedded_client(self.path) if self.embedded
                       else _server_client(settings))

    def writer(self, name: str, make: Any) -> Any:  # noqa: ANN401 - a rag.lock lock
        """The writer lock of collection `name`: one per process, so it is re-entrant
        across every store object of that collection."""
        with self._lock:
            if name not in self._writers:
                self._writers[name] = make()
            return self._writers[name]

    def reopen(self) -> None:
        """A fresh client that loads what other processes wrote. The old one is left to
        the garbage collector rather than stopped: a question may still be reading it."""
        if not self.embedded:
            self.epoch += 1
            return
        with self._lock:
            identifier = str(self.path)
            SharedSystemClient._identifier_to_system.pop(identifier, None)
            SharedSystemClient._identifier_to_refcount.pop(identifier, None)
            self.client = _embedded_client(self.path)
            self.epoch += 1
            logger.info("reopened the store at %s: another process wrote to it", self.path)


_CONNECTIONS: dict[tuple[Any, ...], Connection] = {}
_REGISTRY = threading.Lock()


def connect(settings: Settings) -> Connection:
    """The connection for this store, shared by every `ArticleStore` of the process."""
    key = ((settings.chroma_host, settings.chroma_port) if settings.chroma_host
           else (str(Path(settings.data_dir).resolve()),))
    with _REGISTRY:
        conn = _CONNECTIONS.get(key)
        if conn is None:
            conn = _CONNECTIONS[key] = Connection(settings)
        return conn


def forget(settings: Settings) -> None:
    """Drop this process's connection (tests that replace a store's files under it)."""
    key = ((settings.chroma_host, settings.chroma_port) if settings.chroma_host
           else (str(Path(settings.data_dir).resolve()),))
    with _REGISTRY:
        conn = _CONNECTIONS.pop(key, None)
    if conn is not None and conn.embedded:
        SharedSystemClient._identifier_to_system.pop(str(conn.path), None)
        SharedSystemClient._identifier_to_refcount.pop(str(conn.path), None)

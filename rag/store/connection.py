"""Chroma clients, one per store per process, and a failure of the store as one line.

Contract: `connect(settings)` is the `Connection` every `ArticleStore` of the process
shares for that data folder or server; `Connection.reopen` gives an embedded store a
fresh client that sees other processes' writes (`epoch` counts reopenings, so holders
of collection handles fetch them again), and `ArticleStore.sync` calls it when the
store's generation stamp says another process wrote. Opening an embedded store takes a
short file lock, so one process at a time creates or migrates its database.
`store_error` and `as_store_error` turn Chroma's and the disk's failures into a
`StoreError` of one line that says what to do.

A server (CHROMA_HOST) is reached over HTTPS with CHROMA_SSL, with the headers of
CHROMA_HEADERS (`server_headers`: a JSON object; secrets, never logged), in the tenant
and database CHROMA_TENANT and CHROMA_DATABASE (Chroma's defaults unless set; one that
does not exist is a StoreError saying how to create it).

Why reopen, and why one opener at a time: docs/decisions/store-connection.md.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import chromadb
from chromadb.api import ClientAPI
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings as ChromaSettings
from filelock import FileLock, Timeout

from rag.errors import StoreError
from rag.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

OPEN_WAIT = 120.0  # seconds; opening takes well under one, migrating an old store a few


DEFAULT_TENANT, DEFAULT_DATABASE = "default_tenant", "default_database"  # chromadb.config's
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
_REFUSED = re.compile(r"\b40[13]\b|unauthori[sz]ed|forbidden", re.IGNORECASE)


def elsewhere(settings: Settings) -> bool:
    """Whether the store is in a tenant or database of the server other than Chroma's
    defaults (names and keys then say which)."""
    return (settings.chroma_tenant, settings.chroma_database) != (DEFAULT_TENANT,
                                                                  DEFAULT_DATABASE)


def location(settings: Settings) -> str:
    if settings.chroma_host:
        where = f"chroma server {settings.chroma_host}:{settings.chroma_port}"
        if elsewhere(settings):
            where += (f" (tenant {settings.chroma_tenant!r}, database "
                      f"{settings.chroma_database!r})")
        return where
    return str(Path(settings.data_dir) / "chroma")


def server_headers(settings: Settings) -> dict[str, str] | None:
    """CHROMA_HEADERS, a JSON object of header names to values, as a dict (None: unset).
    A malformed one is a SettingsError of one line naming the setting, and never any
    of its values: they are secrets (tokens)."""
    secret = settings.chroma_headers
    raw = secret.get_secret_value().strip() if secret is not None else ""
    if not raw:
        return None

    def bad(why: str) -> SettingsError:
        return SettingsError(f"invalid setting CHROMA_HEADERS: {why}; write a JSON object of "
                             'header names to values, e.g. {"X-Chroma-Token": "..."}')

    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:  # its message says where, never what
        raise bad(f"not JSON ({exc.msg}, character {exc.pos})") from None
    if not isinstance(value, dict):
        raise bad(f"a JSON {type(value).__name__}, not an object")
    headers: dict[str, str] = {}
    for n, (name, text) in enumerate(value.items(), 1):
        if not _HEADER_NAME.fullmatch(name):  # not shown: it may be a pasted "Name: secret"
            raise bad(f"the name of header {n} is not a header name (letters, digits, - "
                      "and the like; no spaces or ':')")
        if not isinstance(text, str):
            raise bad(f"the value of {name!r} is not a string")
        if any(c in text for c in "\r\n\0"):
            raise bad(f"the value of {name!r} holds a line break")
        headers[name] = text
    return headers or None


def _out_of_room(where: str) -> bool:
    """Chroma reports a full disk as a failed compaction; look at the disk ourselves."""
    import resource
    import shutil

    folder = Path(where)
    try:
        if folder.exists() and shutil.disk_usage(folder).free < 64 * 2**20:
            return True
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:  # a file-size limit (ulimit -f) was reached?
            return any(f.stat().st_size >= limit - 2**20 for f in folder.rglob("*")
                       if f.is_file())
    except (OSError, ValueError):
        return False
    return False


def store_error(exc: BaseException, where: str, doing: str) -> StoreError:
    """One line for a failure of the store itself, naming the folder and what to do."""
    text = " ".join(str(exc).split())
    low = text.casefold()
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG)
    if where.startswith("chroma server") and any(
            w in low for w in ("connect", "refused", "unreachable", "timed out", "timeout")):
        why = (f"cannot reach the {where} ({text[:80]}); start it with `chroma run --path DIR "
               "--port PORT`, or unset CHROMA_HOST to use the embedded store. Answers resume "
               "by themselves once it is back")
    elif full or "disk is full" in low or "no space left" in low or "file too large" in low \
            or (doing.startswith(("writing", "removing", "recording")) and _out_of_room(where)):
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
    elif "log store" in low or "backfill" in low or "segment" in low:
        why = (f"the store at {where} could not be read while {doing} ({text[:100]}); it may "
               "be damaged: run `python -m ingest check`, and if that fails too, restore the "
               "folder from a backup or move it aside and ingest the articles again")
    else:
        why = (f"the store at {where} failed while {doing} ({type(exc).__name__}: "
               f"{text[:140]}); run `python -m ingest check` to see what is wrong")
    return StoreError(why)


def as_store_error(exc: BaseException, settings: Settings, doing: str = "reading it"
                   ) -> StoreError | None:
    """A failure raised by Chroma itself (or its database) as our one line; None for
    anything else. For the last line of defence: CLI mains and the app's error line."""
    from chromadb.errors import ChromaError

    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, ChromaError) or type(exc).__module__.startswith(("chromadb", "sqlite3")):
        return store_error(exc, location(settings), doing)
    return None


def integrity(settings: Settings) -> str | None:
    """SQLite's own quick check of an embedded store's database: None when sound, else
    what it says. (Chroma opens a database with a damaged middle without complaint.)"""
    import sqlite3

    db = Path(settings.data_dir) / "chroma" / "chroma.sqlite3"
    if settings.chroma_host or not db.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            rows = con.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    said = "; ".join(str(r[0]) for r in rows[:3])
    return None if said == "ok" else said


def runaway_indexes(settings: Settings) -> list[tuple[str, int]]:
    """(collection, bytes) of each of an embedded store's vector indexes whose
    `link_lists.bin` has grown past its `data_level0.bin`, which a sound index never
    does (its upper levels hold ~1/300 of the bytes of level 0). A Chroma bug does this
    after a writer dies while saving the index (chroma-core/chroma#7510, open): every
    later save writes further past the end, growing the file without bound. Measured
    here: after a build was stopped mid-write at 866k chunks, 56 GiB on disk (1.9 TB
    apparent) in 35 minutes, until the disk was full."""
    import sqlite3

    folder = Path(settings.data_dir) / "chroma"
    db = folder / "chroma.sqlite3"
    if settings.chroma_host or not db.is_file():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            segments = con.execute(
                "SELECT s.id, c.name FROM segments s JOIN collections c ON s.collection = c.id "
                "WHERE s.scope = 'VECTOR'").fetchall()
    except sqlite3.Error:
        return []  # `integrity` says what is wrong with the database
    out = []
    for segment, name in segments:
        links, level0 = folder / segment / "link_lists.bin", folder / segment / "data_level0.bin"
        with contextlib.suppress(OSError):
            size = links.stat().st_size
            if size > max(level0.stat().st_size, 1 << 20):
                out.append((str(name), size))
    return out


def runaway_message(where: str, found: list[tuple[str, int]]) -> str:
    name, size = found[0]
    return (f"the vector index of collection {name!r} in {where} is damaged: its "
            f"link_lists.bin has grown to {size / 2**30:,.1f} GiB and grows with every write "
            "(a Chroma bug after a writer was killed while saving the index, "
            "chroma-core/chroma#7510); nothing more is written to it. Restore the folder from "
            "a backup, or `python -m ingest drop --yes` and ingest the articles again")


def _chroma_settings() -> ChromaSettings:
    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def _server_client(settings: Settings) -> ClientAPI:
    """A client of the server's tenant and database, with CHROMA_SSL and CHROMA_HEADERS.
    Chroma checks at once that the tenant and database exist (NotFoundError)."""
    from chromadb.errors import AuthorizationError, ChromaAuthError, NotFoundError

    headers = server_headers(settings)
    where = f"{settings.chroma_host}:{settings.chroma_port}"
    tenant, database = settings.chroma_tenant, settings.chroma_database
    try:
        client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port,
                                     ssl=settings.chroma_ssl, headers=headers, tenant=tenant,
                                     database=database, settings=_chroma_settings())
        client.heartbeat()
    except NotFoundError as exc:
        if str(exc).casefold().startswith("tenant"):
            raise StoreError(
                f"the Chroma server at {where} has no tenant {tenant!r} (CHROMA_TENANT); "
                f"create it with chromadb's AdminClient (`create_tenant({tenant!r})`, then "
                f"`create_database({database!r}, tenant={tenant!r})`), or unset CHROMA_TENANT "
                f"to use {DEFAULT_TENANT!r}") from None
        raise StoreError(
            f"the Chroma server at {where} has no database {database!r} in tenant {tenant!r} "
            f"(CHROMA_DATABASE); create it with chromadb's AdminClient "
            f"(`create_database({database!r}, tenant={tenant!r})`; on Chroma Cloud, `chroma "
            f"db create {database}`), or unset CHROMA_DATABASE to use {DEFAULT_DATABASE!r}"
        ) from None
    except (AuthorizationError, ChromaAuthError) as exc:
        raise _refused(where, exc) from None
    except Exception as exc:
        if _REFUSED.search(str(exc)):  # a proxy's 401/403 page, not Chroma's own error
            raise _refused(where, exc) from None
        raise StoreError(
            f"cannot reach the Chroma server at {where}"
            f"{' over HTTPS (CHROMA_SSL)' if settings.chroma_ssl else ''}"
            f" ({type(exc).__name__}); start it with `chroma run --path DIR --port "
            f"{settings.chroma_port}` or unset CHROMA_HOST to use the embedded store"
        ) from exc
    return client


def _refused(where: str, exc: BaseException) -> StoreError:
    # the server's own words are left out: a proxy may echo the headers it refused
    return StoreError(f"the Chroma server at {where} refused this client "
                      f"({type(exc).__name__}); check the token in CHROMA_HEADERS, and "
                      "CHROMA_TENANT and CHROMA_DATABASE")


def _embedded_client(path: Path) -> ClientAPI:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with _opening(path):
            client = chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
            client.list_collections()  # a damaged database says so here, not mid-answer
    except StoreError:
        raise
    except Exception as exc:
        raise store_error(exc, str(path), "opening it") from None
    return client


@contextmanager
def _opening(path: Path) -> Iterator[None]:
    """Open one embedded store at a time across processes. Chroma creates (and migrates)
    its database on open without a lock of its own: two first ingests started together
    both ran the migrations, and one failed with "table collections already exists".
    A folder we may not write to cannot be created or migrated either, so there we
    open without the lock and let Chroma say what it thinks."""
    lock = FileLock(str(path.parent / "chroma.open.lock"))
    held = False
    try:
        lock.acquire(timeout=OPEN_WAIT)
        held = True
    except Timeout:
        raise StoreError(f"the store at {path} is being opened by another process that "
                         f"has not finished in {OPEN_WAIT:.0f} s; try again") from None
    except OSError as exc:
        logger.debug("opening %s without the open lock: %s", path, exc)
    try:
        yield
    finally:
        if held:
            lock.release()


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

    def writer(self, name: str, make: Any) -> Any:  # noqa: ANN401 - a rag.store.lock lock
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


def _key(settings: Settings) -> tuple[Any, ...]:
    """Which connection: a server's address, tenant, database and how it is reached
    (the headers by their digest), or an embedded store's folder."""
    if not settings.chroma_host:
        return (str(Path(settings.data_dir).resolve()),)
    secret = settings.chroma_headers.get_secret_value() if settings.chroma_headers else ""
    return (settings.chroma_host, settings.chroma_port, settings.chroma_ssl,
            settings.chroma_tenant, settings.chroma_database,
            hashlib.sha256(secret.encode()).hexdigest())


def connect(settings: Settings) -> Connection:
    """The connection for this store, shared by every `ArticleStore` of the process."""
    key = _key(settings)
    with _REGISTRY:
        conn = _CONNECTIONS.get(key)
        if conn is None:
            conn = _CONNECTIONS[key] = Connection(settings)
        return conn


def forget(settings: Settings) -> None:
    """Drop this process's connection (tests that replace a store's files under it)."""
    with _REGISTRY:
        conn = _CONNECTIONS.pop(_key(settings), None)
    if conn is not None and conn.embedded:
        SharedSystemClient._identifier_to_system.pop(str(conn.path), None)
        SharedSystemClient._identifier_to_refcount.pop(str(conn.path), None)

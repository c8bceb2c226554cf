"""Optional login for the app: users with roles, and throttling of failed logins.

    RAG_AUTH=alice:secret:editor               one user (an editor)
    RAG_AUTH=alice:secret:editor,bob:hunter2   several (inline, a password may not hold a comma)
    RAG_AUTH=/etc/newsrag/users                a file: one `user:password[:role]` a line,
                                               # comments; a password may hold commas there

Roles: `reader` (ask questions, export; the default) and `editor` (also add and remove
articles). A password may contain ':'; only a last `:reader` or `:editor` is a role.
Passwords are compared in constant time. Failed logins are throttled per user name and
per client address by `LoginGuard`, an ASGI middleware in front of gradio's /login.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rag.errors import RagError, UsageError

logger = logging.getLogger(__name__)

# The two roles, by the names RAG_AUTH and tokens give them: an asker ("reader") asks
# and reads; an editor also adds and removes articles and follows feeds.
ASKER, EDITOR = "reader", "editor"
ROLES = (ASKER, EDITOR)
DEFAULT_ROLE = ASKER  # least privilege: adding and removing must be granted


class Asking(Protocol):
    """Who is asking: a logged-in user's name (gradio's `Request` is one), or None."""

    @property
    def username(self) -> str | None: ...


class AuthError(UsageError):
    """A malformed auth setting; the message says what is wrong."""


class NotEditor(RagError):
    """An asker tried what only editors may do (add, remove, follow feeds)."""


@dataclass(frozen=True)
class User:
    name: str
    password: str
    role: str = DEFAULT_ROLE


def _parse_entry(entry: str, where: str, number: int) -> User:
    user, sep, rest = entry.partition(":")
    user = user.strip()
    password, role = rest, DEFAULT_ROLE
    head, sep2, last = rest.rpartition(":")
    if sep2 and head and last.strip().lower() in ROLES:
        password, role = head, last.strip().lower()
    if not sep or not user or not password:
        raise AuthError(f"{where}: entry {number} is not user:password[:role]")
    return User(user, password, role)


def parse_users(text: str, where: str = "RAG_AUTH", *, one_per_line: bool = False
                ) -> dict[str, User]:
    """Users from inline entries (comma-separated) or a users file (`one_per_line`: a
    password in a file may hold commas, so lines are never split)."""
    users: dict[str, User] = {}
    if one_per_line:
        entries = [line.strip() for line in text.splitlines()]
    else:
        entries = [e.strip() for line in text.splitlines() for e in line.split(",")]
    for number, entry in enumerate(entries, 1):
        if not entry or entry.startswith("#"):
            continue
        found = _parse_entry(entry, where, number)
        if found.name in users:
            raise AuthError(f"{where}: user {found.name!r} is named twice (entry {number})")
        users[found.name] = found
    if not users:
        raise AuthError(f"{where} names no users (expected user:password[:role])")
    return users


def load_users(value: str | None) -> dict[str, User] | None:
    """Users from the setting's value: inline entries, or the path of a users file.
    None when login is off (unset or blank)."""
    value = (value or "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if ":" not in value or path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise AuthError(f"RAG_AUTH: cannot read the users file {path} "
                            f"({exc.strerror or exc})") from exc
        return parse_users(text, where=str(path), one_per_line=True)
    return parse_users(value)


def checker(users: dict[str, User]) -> Callable[[str, str], bool]:
    """A `(username, password) -> bool` for gradio's `launch(auth=...)`."""
    def check(username: str, password: str) -> bool:
        found = users.get(username or "")
        # compare even for unknown users, so timing does not tell which names exist
        expected = found.password if found else "\0"
        ok = hmac.compare_digest(expected.encode(), (password or "").encode())
        return found is not None and ok
    return check


def role_of(users: dict[str, User] | None, username: str | None) -> str:
    """The role of a logged-in user; without login everyone at the keyboard edits."""
    if users is None:
        return EDITOR
    found = users.get(username or "")
    return found.role if found else ASKER


# -- throttling failed logins ------------------------------------------------------


STALE_SWEEP_KEYS = 10_000  # keys held before stale ones are swept


class LoginThrottle:
    """Sliding-window counts of login attempts per key (a user name or a client address).

    An attempt counts as failed from the moment it starts and is forgiven only when it
    succeeds, so a burst of parallel guesses is throttled as surely as a serial one.
    """

    def __init__(self, max_failures: int = 5, window: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, keys: dict[str, int]) -> float:
        """Seconds until every key (with its own limit) may try again; 0 when none is held."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key, limit in keys.items():
                times = self._recent(key, now)
                if len(times) >= limit:
                    wait = max(wait, times[-limit] + self.window - now)
        return wait

    def attempt(self, keys: list[str]) -> float:
        now = self.clock()
        with self._lock:
            if len(self._failures) >= STALE_SWEEP_KEYS:
                self._forget_stale(now)
            for key in keys:
                self._recent(key, now).append(now)
        return now

    def _forget_stale(self, now: float) -> None:
        """Drop keys with no failure in the window: names sprayed by a guesser would
        otherwise stay in memory for good."""
        for key in [k for k, times in self._failures.items()
                    if not times or times[-1] <= now - self.window]:
            del self._failures[key]

    def forgive(self, key: str, stamp: float) -> None:
        with self._lock:
            times = self._failures.get(key)
            if times and stamp in times:
                times.remove(stamp)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_LOGIN_BODY = 16 * 1024  # a login form is a few hundred bytes


class LoginGuard:
    """ASGI middleware: refuses /login with 429 while its user name or the client's
    address has too many recent failures. Per address the limit is four times the per-user
    one, so one office behind a NAT is not locked out by one user's typos.

    Written by hand because gradio's auth callback sees neither the client address nor
    a way to answer "try later"; this wraps gradio's own /login and changes nothing else.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], throttle: LoginThrottle) -> None:
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", "")).rstrip("/")
        if scope["type"] != "http" or scope.get("method") != "POST" or \
                not path.endswith("/login"):
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_LOGIN_BODY:
                await _reply(send, 413, "The login form is too large.")
                return
            if not message.get("more_body"):
                break
        username = await _form_username(scope, body)
        client = (scope.get("client") or ("unknown", 0))[0]
        user_key, client_key = f"user:{username.casefold()}", f"addr:{client}"
        limit = self.throttle.max_failures
        wait = self.throttle.retry_after({user_key: limit, client_key: limit * 4})
        if wait > 0:
            logger.warning("login throttled for user %r from %s (%.0f s left)",
                           username, client, wait)
            await _reply(send, 429, f"Too many failed logins: try again in {wait:.0f} s.",
                         {"retry-after": str(int(wait) + 1)})
            return
        stamp = self.throttle.attempt([user_key, client_key])
        status: dict[str, int] = {}

        async def replay() -> Message:
            if "sent" in status:
                return await receive()  # after the body: wait for a disconnect
            status["sent"] = 1
            return {"type": "http.request", "body": body, "more_body": False}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        await self.app(scope, replay, watch)
        if status.get("code") == 200:
            self.throttle.forgive(user_key, stamp)
            self.throttle.forgive(client_key, stamp)
        else:
            logger.info("failed login for user %r from %s", username, client)


async def _form_username(scope: Scope, body: bytes) -> str:
    from starlette.requests import Request

    async def once() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, once).form()
        return str(form.get("username") or "").strip()
    except Exception:  # a malformed form: gradio answers it; it still counts per address
        return ""


class UploadGuard:
    """ASGI middleware: with login on, gradio's own upload route (`/gradio_api/upload`,
    where a file goes before any event handler sees it) takes files from editors only.

    Gradio checks that a caller is logged in, not what they may do, so a reader could
    leave files in its cache that no handler ever deletes. The user is read from
    gradio's session cookie as gradio itself reads it (`App.tokens`); written by hand
    because gradio has no per-route permission hook."""

    def __init__(self, app: Callable[..., Awaitable[None]],
                 users: dict[str, User] | None) -> None:
        self.app = app
        self.users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", "")).rstrip("/")
        if self.users is None or scope["type"] != "http" or \
                not path.endswith("/gradio_api/upload"):
            await self.app(scope, receive, send)
            return
        if role_of(self.users, _gradio_user(scope)) != EDITOR:
            await _reply(send, 403, "Only editors may upload files.")
            return
        await self.app(scope, receive, send)


def _gradio_user(scope: Scope) -> str | None:
    """The logged-in user of a request to gradio's app, from its session cookie."""
    from http.cookies import SimpleCookie

    app = scope.get("app")
    cookie_id, tokens = getattr(app, "cookie_id", None), getattr(app, "tokens", None)
    if cookie_id is None or not isinstance(tokens, dict):
        return None
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers") or []:
        if name == b"cookie":
            with contextlib.suppress(Exception):  # a malformed cookie: nobody
                jar.load(value.decode("latin-1"))
    for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
        if name in jar:
            user = tokens.get(jar[name].value)
            if user:
                return str(user)
    return None


async def _reply(send: Send, code: int, detail: str, headers: dict[str, str] | None = None
                 ) -> None:
    raw = [(b"content-type", b"application/json")]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": code, "headers": raw})
    await send({"type": "http.response.body", "body": json.dumps({"detail": detail}).encode()})


# -- binding -------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    host = (host or "").strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def bind_warning(host: str, port: int, auth_on: bool) -> str | None:
    """The warning to print when the app is reachable from other machines without login."""
    if auth_on or is_loopback(host):
        return None
    return (f"WARNING: the app listens on {host}:{port}, which other machines can reach, and no "
            "login is set: anyone who reaches it can read and change the library. Set "
            "RAG_AUTH=user:password:editor (or RAG_AUTH=/path/to/users-file), or bind to "
            "127.0.0.1.")

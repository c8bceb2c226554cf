"""Optional login for the app: `user:password` pairs, given inline or in a file.

    RAG_AUTH=alice:secret                 one user
    RAG_AUTH=alice:secret,bob:hunter2     several (a password may not hold a comma)
    RAG_AUTH=/etc/newsrag/users           a file: one `user:password` a line, # comments

A password may contain ':' (only the first one separates). Passwords are compared in
constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from pathlib import Path


class AuthError(ValueError):
    """A malformed auth setting; the message says what is wrong."""


def parse_users(text: str, where: str = "RAG_AUTH") -> dict[str, str]:
    users: dict[str, str] = {}
    entries = [e.strip() for line in text.splitlines() for e in line.split(",")]
    for number, entry in enumerate(entries, 1):
        if not entry or entry.startswith("#"):
            continue
        user, sep, password = entry.partition(":")
        user = user.strip()
        if not sep or not user or not password:
            raise AuthError(f"{where}: entry {number} is not user:password")
        users[user] = password
    if not users:
        raise AuthError(f"{where} names no users (expected user:password)")
    return users


def load_users(value: str | None) -> dict[str, str] | None:
    """Users from the setting's value: inline pairs, or the path of a users file.
    None when login is off (unset or blank)."""
    value = (value or "").strip()
    if not value:
        return None
    if ":" not in value or Path(value).expanduser().is_file():
        path = Path(value).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise AuthError(f"RAG_AUTH: cannot read the users file {path} "
                            f"({exc.strerror or exc})") from exc
        return parse_users(text, where=str(path))
    return parse_users(value)


def checker(users: dict[str, str]) -> Callable[[str, str], bool]:
    """A `(username, password) -> bool` for gradio's `launch(auth=...)`."""
    def check(username: str, password: str) -> bool:
        expected = users.get(username or "")
        # compare even for unknown users, so timing does not tell which names exist
        ok = hmac.compare_digest((expected or "\0").encode(), (password or "").encode())
        return expected is not None and ok
    return check


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
            "RAG_AUTH=user:password (or RAG_AUTH=/path/to/users-file), or bind to 127.0.0.1.")

"""API tokens: who may call the app's OpenAI-compatible API when login is on.

    python -m rag token add alice            # prints the token once
    python -m rag token list
    python -m rag token revoke alice         # every token of alice (or one token's id)

A token is issued to a user name and carries a role (reader or editor, as in
RAG_AUTH). The file (RAG_API_TOKENS, by default `<data dir>/api-tokens.json`) keeps
only each token's SHA-256: a token is 256 random bits, so a fast hash is as safe as a
slow one and costs nothing per request, and a stolen file opens nothing. Writers hold
a file lock and replace the file whole, so nothing reading it sees half of it; the app
reads it again whenever it changes, so a revoked token stops working at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock

from rag.errors import UsageError
from rag.files import replace_text
from rag.settings import Settings
from web.auth import ROLES

logger = logging.getLogger(__name__)
PREFIX = "nrag-"  # tells a leaked token apart from other secrets (secret scanners)


class TokenError(UsageError):
    """A token file that cannot be read or written, or a bad request to change it."""


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    role: str
    sha256: str
    created: str


def tokens_path(settings: Settings) -> Path:
    return Path(settings.api_tokens or Path(settings.data_dir) / "api-tokens.json")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[float, int] | None = None
        self._tokens: list[Token] = []

    def load(self) -> list[Token]:
        """The tokens, read again only when the file changed since the last read."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen, self._tokens = None, []
            return []
        except OSError as exc:
            raise TokenError(f"cannot read the API tokens file {self.path} "
                             f"({exc.strerror or exc})") from exc
        if self._seen != (stat.st_mtime, stat.st_size):
            self._tokens = self._read()
            self._seen = (stat.st_mtime, stat.st_size)
        return list(self._tokens)

    def _read(self) -> list[Token]:
        try:
            rows = json.loads(self.path.read_text(encoding="utf-8") or "[]")
            return [Token(**row) for row in rows]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError) as exc:
            raise TokenError(f"the API tokens file {self.path} is unreadable ({exc}); fix "
                             "or delete it and issue the tokens again") from exc

    def find(self, token: str) -> Token | None:
        """The token's entry; compared in constant time, as a password is."""
        if not token.startswith(PREFIX):
            return None
        wanted = digest(token)
        found = None
        for entry in self.load():
            if hmac.compare_digest(entry.sha256, wanted):
                found = entry
        return found

    def add(self, name: str, role: str) -> tuple[Token, str]:
        """A new token for `name`: its entry, and the token itself (shown only now)."""
        name = name.strip()
        if not name or any(c in name for c in ":,\n"):
            raise TokenError(f"{name!r} is not a user name (no ':', ',' or line breaks)")
        if role not in ROLES:
            raise TokenError(f"the role must be one of {', '.join(ROLES)}, not {role!r}")
        secret = PREFIX + secrets.token_urlsafe(32)
        entry = Token(id=secrets.token_hex(4), name=name, role=role, sha256=digest(secret),
                      created=datetime.now(UTC).replace(microsecond=0).isoformat())
        with self._locked():
            self._write([*self._read(), entry])
        return entry, secret

    def revoke(self, who: str) -> list[Token]:
        """Removes the token with this id, or every token of the user with this name."""
        with self._locked():
            tokens = self._read()
            gone = [t for t in tokens if who in (t.id, t.name)]
            if not gone:
                raise TokenError(f"no token has the id or user name {who!r} "
                                 "(python -m rag token list shows them)")
            self._write([t for t in tokens if t not in gone])
        return gone

    def _locked(self) -> FileLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TokenError(f"cannot create {self.path.parent} ({exc.strerror or exc})"
                             ) from exc
        return FileLock(str(self.path) + ".lock", timeout=30)

    def _write(self, tokens: list[Token]) -> None:
        try:
            replace_text(self.path, json.dumps([asdict(t) for t in tokens], indent=1), 0o600)
        except OSError as exc:
            raise TokenError(f"cannot write the API tokens file {self.path} "
                             f"({exc.strerror or exc})") from exc

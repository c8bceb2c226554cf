"""What the user named (files, folders, URLs, `-`) to a flat list of sources, and their bytes."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ingest.readers import SUPPORTED, SourceError

# Files in a corpus folder that are about the corpus, not articles in it.
_NOT_ARTICLES = ("readme", "license", "licence", "changelog", "contributing", "notice")
USER_AGENT = "newsrag/0.1 (+article ingestion)"


@dataclass
class Source:
    kind: str  # "file", "url" or "stdin"
    ref: str  # absolute path, URL, or "-"
    label: str  # how reports name it

    @property
    def suffix(self) -> str:
        return Path(self.ref).suffix.lower() if self.kind == "file" else ""


@dataclass
class Expanded:
    sources: list[Source] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # named paths that do not exist
    skipped: list[str] = field(default_factory=list)  # folder files passed over, with why


def expand(refs: list[str]) -> Expanded:
    out = Expanded()
    seen: set[str] = set()

    def add(source: Source) -> None:
        if source.ref not in seen:
            seen.add(source.ref)
            out.sources.append(source)

    for ref in refs:
        if ref == "-":
            add(Source("stdin", "-", "<stdin>"))
        elif ref.lower().startswith(("http://", "https://")):
            add(Source("url", ref, ref))
        else:
            path = Path(ref).expanduser()
            if path.is_dir():
                for file in sorted(p for p in path.rglob("*") if p.is_file()):
                    rel = file.relative_to(path)
                    if any(part.startswith(".") for part in rel.parts):
                        continue
                    if file.suffix.lower() not in SUPPORTED:
                        out.skipped.append(f"{file}: unsupported extension")
                    elif file.stem.lower().startswith(_NOT_ARTICLES):
                        out.skipped.append(f"{file}: looks like a README/LICENSE, not an article")
                    else:
                        add(Source("file", str(file.resolve()), str(file)))
            elif path.is_file():
                add(Source("file", str(path.resolve()), ref))
            else:
                out.missing.append(ref)
    return out


def read_bytes(source: Source, max_bytes: int, timeout: float) -> tuple[bytes, str, str | None]:
    """The source's bytes, its content type (URLs) and its final URL (after redirects)."""
    if source.kind == "stdin":
        data = sys.stdin.buffer.read(max_bytes + 1)
        _check_size(len(data), max_bytes)
        return data, "", None
    if source.kind == "file":
        path = Path(source.ref)
        if path.suffix.lower() not in SUPPORTED:
            raise SourceError(
                f"unsupported extension {path.suffix or '(none)'!r}; "
                f"supported: {', '.join(SUPPORTED)}"
            )
        _check_size(path.stat().st_size, max_bytes)
        return path.read_bytes(), "", None
    return _fetch(source.ref, max_bytes, timeout)


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        limit = f"{max_bytes / 1048576:g} MiB" if max_bytes >= 1048576 else f"{max_bytes} bytes"
        raise SourceError(f"larger than the {limit} limit (set RAG_MAX_FILE_MB to raise it)")


def _fetch(url: str, max_bytes: int, timeout: float) -> tuple[bytes, str, str | None]:
    try:
        with httpx.Client(follow_redirects=True, timeout=timeout,
                          headers={"User-Agent": USER_AGENT}) as client, \
                client.stream("GET", url) as response:
            if response.status_code != 200:
                raise SourceError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                _check_size(size, max_bytes)
                chunks.append(chunk)
            return b"".join(chunks), response.headers.get("content-type", ""), str(response.url)
    except httpx.TimeoutException as exc:
        raise SourceError(f"timed out after {timeout:g} s") from exc
    except httpx.InvalidURL as exc:
        raise SourceError(f"invalid URL ({exc})") from exc
    except httpx.HTTPError as exc:
        raise SourceError(f"unreachable ({type(exc).__name__}: {str(exc)[:80] or 'no answer'})") \
            from exc

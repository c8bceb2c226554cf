"""What the user named (files, folders, URLs, `-`) to a flat list of sources, and their bytes."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ingest.fetch import FetchPolicy, fetch
from ingest.fetch import check_size as _check_size
from ingest.formats import SUPPORTED, SourceError

# Files in a corpus folder that are about the corpus, not articles in it.
_NOT_ARTICLES = ("readme", "license", "licence", "changelog", "contributing", "notice")


def is_url(ref: str) -> bool:
    """A ref that names a web page (http or https), not a path."""
    return ref.lower().startswith(("http://", "https://"))


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
    refused: list[str] = field(default_factory=list)  # not URLs, when only URLs may be read


def expand(refs: list[str], local: bool = True) -> Expanded:
    """`local=False`: only URLs; any other ref is refused without touching the disk, so
    a web user can neither read server files nor learn which paths exist."""
    out = Expanded()
    seen: set[str] = set()

    def add(source: Source) -> None:
        if source.ref not in seen:
            seen.add(source.ref)
            out.sources.append(source)

    for ref in refs:
        if is_url(ref):
            add(Source("url", ref, ref))
        elif not local:
            out.refused.append(ref)
        elif ref == "-":
            add(Source("stdin", "-", "<stdin>"))
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


def read_bytes(source: Source, max_bytes: int, timeout: float,
               policy: FetchPolicy | None = None) -> tuple[bytes, str, str | None]:
    """The source's bytes, its content type (URLs) and its final URL (after redirects).

    URLs go through `ingest.fetch` under `policy` (default: public addresses only)."""
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
    return fetch(source.ref, max_bytes, timeout, policy)

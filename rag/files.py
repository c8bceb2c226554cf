"""Small files replaced whole: a reader sees the old file or the new one, never half.

Written to a temporary file beside the target, flushed to disk, then renamed over
it (a rename within one folder is atomic). Callers that may race hold their own lock.
"""

from __future__ import annotations

import os
from pathlib import Path


def replace_text(path: Path, text: str, mode: int = 0o644) -> None:
    """`path` now holds `text`; `mode` for a new file (0o600: secrets). Raises OSError."""
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)

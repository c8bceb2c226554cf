"""The app's own copies of what web users add: uploads and pasted text.

They live in the data folder (`uploads/<content hash>/<name>`), not gradio's cache:
the stored path stays valid as long as the article, keeps the file's name, and the
same file uploaded twice is one source. Web users see these as `uploads/...` names,
never as server paths (`source_name`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from rag.records import line_ref, split_line_ref


class Uploads:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._prefix = str(folder.resolve()) + os.sep

    def keep(self, read: Callable[[int], bytes], name: str) -> str:
        """Our copy of a stream, streamed to a temporary file and renamed into place, so
        a copy is whole or absent."""
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, part = tempfile.mkstemp(dir=self.folder, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                while block := read(1 << 20):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            dest = self.folder / digest.hexdigest()[:12] / name
            dest.parent.mkdir(exist_ok=True)
            if dest.exists():
                os.unlink(part)
            else:
                os.replace(part, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(part)
            raise
        return str(dest.resolve())

    def save_upload(self, path: str) -> tuple[str | None, str]:
        """(our copy of an uploaded file, or None when it is over the size limit, and the
        name it was uploaded as). Gradio's cached copy is deleted either way."""
        src = Path(path)
        name = re.sub(r"[^\w.-]+", "_", src.name).strip("._")[-100:] or "upload"
        try:
            if src.stat().st_size > self.max_bytes:
                return None, src.name
            with src.open("rb") as handle:
                return self.keep(handle.read, name), src.name
        finally:
            forget_gradio_upload(src)

    def save_text(self, text: str, title: str = "") -> str:
        """Pasted text as a .txt file (the first line is the headline, as with the CLI)."""
        body = text.strip()
        if title.strip():
            body = f"{' '.join(title.split())}\n\n{body}"
        return self.keep(io.BytesIO((body + "\n").encode("utf-8")).read, "pasted.txt")

    def source_name(self, path: str | None) -> str:
        """A source as a web user may see it: its place under uploads, or its file name
        (with a jsonl line), never an absolute server path."""
        if not path:
            return ""
        file, line = split_line_ref(path)
        if file.startswith(self._prefix):
            name = "uploads/" + file[len(self._prefix):].replace(os.sep, "/")
        else:
            name = Path(file).name
        return line_ref(name, line) if line is not None else name

    def delete(self, ref: str, used: Callable[[], Iterable[str]]) -> None:
        """Delete our copy behind `ref` unless a path `used()` gives still comes from it;
        the user's own files (anything outside the uploads folder) are never touched.
        (`used` is called only for our copies: it lists the library.)"""
        path = Path(split_line_ref(ref)[0])
        if path.parent.parent != self.folder.resolve() or not path.is_file():
            return
        if any(split_line_ref(p)[0] == str(path) for p in used()):
            return  # another article still comes from it (a line of the same jsonl)
        path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()


def forget_gradio_upload(path: Path) -> None:
    """Delete gradio's cached copy of an upload once we have ours (or refused it)."""
    from gradio.utils import get_upload_folder

    with contextlib.suppress(OSError, ValueError):
        cache = Path(get_upload_folder()).resolve()
        if path.resolve().is_relative_to(cache):
            path.unlink()
            with contextlib.suppress(OSError):
                path.parent.rmdir()

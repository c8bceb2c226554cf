"""Helpers the test modules share: ports and the servers they start, a model cache
without the reader models, the pieces of a fake OpenAI-compatible endpoint, and our
own sample articles. (An engine over fixed passages is
`Engine.from_settings(settings, retriever=StaticRetriever(passages))`.)"""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from rag.text import sentence_spans

CHROMA = Path(sys.executable).with_name("chroma")  # the venv's `chroma run`


def embeddings_only_cache(tmp_path: Path) -> Path:
    """A model cache holding the exported embedding model (linked from the real cache,
    so it is not exported again) and none of the reader's models."""
    from rag.settings import Settings

    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    for onnx in Settings().model_cache.expanduser().glob("*.onnx"):
        if not (cache / onnx.name).exists():
            (cache / onnx.name).symlink_to(onnx)
    return cache


def free_port() -> int:
    """A loopback port nothing listens on (at the moment of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server the tests started; kill it if it does not go."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def _pdf_literal(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("latin-1") + b")"


def pdf_pages(pages: list[list[str]], title: str | None = None,
              author: str | None = None) -> bytes:
    """A minimal valid PDF, one page per item, each line of text on a line of its own
    (Helvetica), with an optional title and author in its Info dictionary."""
    first_page = 4  # objects 1-3: catalog, page tree, font; then page + content per page
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, lines in enumerate(pages):
        ops = [b"BT", b"/F1 11 Tf", b"14 TL", b"72 760 Td"]
        ops += [_pdf_literal(line) + b" Tj T*" for line in lines]
        stream = b"\n".join([*ops, b"ET"])
        objects += [
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
            % (first_page + 2 * i + 1),
            b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        ]
    info = b""
    if title:
        info += b"/Title " + _pdf_literal(title)
    if author:
        info += b" /Author " + _pdf_literal(author)
    trailer_info = b""
    if info:
        objects.append(b"<< " + info + b" >>")
        trailer_info = b" /Info %d 0 R" % len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, trailer_info, xref)
    return bytes(out)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without our settings: a child process reads only what it is given,
    and the suite's reader (conftest: the heuristic, not the local model)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAG_", "CHROMA_", "OPENAI_")) or k == "RAG_READER"}
    env.update(extra)
    return env


class ChromaServer:
    """`chroma run` on one loopback port and folder, stopped and started again at will."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.log = root / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, limit: float = 60.0) -> None:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [str(CHROMA), "run", "--path", str(self.root / "db"), "--host", "127.0.0.1",
                 "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=clean_env())
        deadline = time.monotonic() + limit
        while True:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/api/v2/heartbeat",
                             timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the chroma server did not come up"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop(self.proc)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


# -- a fake OpenAI-compatible endpoint's pieces ---------------------------------------


def first_sentence_of_passage_1(prompt: str) -> str:
    """The first sentence of passage [1] of the answerer's prompt
    (rag.answer.draft.llm.format_passages), so that a cut answer would be a supported one if
    the cut went unnoticed."""
    match = re.search(r"^\[1\] \(.*?\)\n(.+?)\n\n(?:\[2\] \(|Question: )", prompt, re.S | re.M)
    if not match:
        return "Iran and Azerbaijan fell out."
    text = match.group(1)
    start, end = sentence_spans(text)[0]
    return text[start:end]


def sse(content: str) -> bytes:
    chunk = {"id": "fake", "object": "chat.completion.chunk", "created": 0, "model": "fake",
             "choices": [{"index": 0, "finish_reason": None, "delta": {"content": content}}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive, chunked streams), no access log; `json_body()` reads a POST."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def json_body(self) -> Any:  # noqa: ANN401
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (its deadline) resets the connection: expected


# -- our own sample articles -----------------------------------------------------------


CLUB_ROW = (
    "Harbour Rovers and Castle United fall out over stadium\n\n"
    "Relations between Harbour Rovers and Castle United soured after the two clubs "
    "failed to agree on sharing the new Quayside stadium, chairman Albert Penhale said. "
    "The dispute began when Castle United demanded a larger share of ticket revenue, "
    "and talks collapsed on Friday.\n"
)
SEED_ARTICLE = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "seed" / \
    "iran-azerbaijan-baku-meeting.txt"


def two_souring_stories(store: Any, settings: Any, folder: Path) -> None:
    """Into `store`: the seed article (outlet Seed Times) and the club row written in
    `folder`, two stories of souring relations (a question naming neither is asked back)."""
    from ingest.pipeline import ingest

    club = folder / "club.txt"
    club.write_text(CLUB_ROW, encoding="utf-8")
    assert ingest([str(SEED_ARTICLE)], store, settings, progress=False,
                  outlet="Seed Times").count("added") == 1
    assert ingest([str(club)], store, settings, progress=False).count("added") == 1

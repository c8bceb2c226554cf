"""Servers the tests start and talk to: free loopback ports, stopping a child, a clean
environment for one, `chroma run` (ChromaServer), and a quiet threaded HTTP server for
fake endpoints and feeds."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMA = Path(sys.executable).with_name("chroma")  # the venv's `chroma run`


def self_signed_tls(folder: Path, name: str, alt_names: str) -> tuple[Path, ssl.SSLContext]:
    """A one-day self-signed certificate for `name` (`alt_names`: openssl's
    subjectAltName, e.g. `DNS:localhost,IP:127.0.0.1`) and a server context holding it;
    the test is skipped without openssl."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName={alt_names}"],
                   check=True, capture_output=True, timeout=60)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    return cert, tls


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

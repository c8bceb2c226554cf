"""The parts `eval.bench_load` runs, each bounded in time and on loopback only: the app
and the CLI ingest as processes (started, waited for, stopped), simulated users asking
`/ask` from their own gradio clients (`run_user`, recorded in a `Tally`), a sampler of
the app's resident memory (`Sampler`), and what their logs say.

Nothing here talks to any address but HOST, and every wait has a timeout.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.settings import PROJECT_ROOT  # sets the offline, no-telemetry environment

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"  # loopback only: this never talks to any other address
RSS_EVERY = 2.0  # seconds between samples of the app's memory
REQUEST_TIMEOUT = 120.0  # seconds one /ask may take (queue wait included)
SHOWN_ERRORS = 5

# Realistic questions about the seed and the BBC articles `eval.bench_load` stores first
# (round-robin: business, entertainment, politics, sport, tech 001-008), plus a few
# that the corpus answers poorly or only after the CLI ingest: every kind is asked.
QUESTIONS = [
    "Why did relations between Iran and Azerbaijan sour?",
    "When did Pezeshkian meet Aliyev in Baku, and what did they discuss?",
    "What did the Bank of England do with interest rates?",
    "How did advertising sales affect Time Warner's profits?",
    "Why did the dollar gain after Alan Greenspan's speech?",
    "What loan claim does the buyer of the Yukos unit face?",
    "How did high fuel prices hit British Airways' profits?",
    "Why did talk of a Pernod takeover lift Allied Domecq shares?",
    "How did Japan narrowly escape recession?",
    "Why is jobs growth in the US still slow?",
    "What trade rules is India calling for?",
    "Which books did Richard and Judy choose for their book club?",
    "Which Alan Bennett play took the theatre prizes?",
    "Who is tipped to win the Whitbread prize?",
    "What are Labour's plans for maternity pay?",
    "Why is the information watchdog probing e-mail deletions?",
    "What did Patricia Hewitt say about career sexism?",
    "What errors doomed the first sale of the Millennium Dome?",
    "Who broke the 5,000m world record?",
    "Why is China cracking down on internet cafes?",
    "What is the sub-$100 PC the digital guru proposed?",
    "How is wi-fi helping farmers in Peru?",
]


def free_port() -> int:
    """A loopback port nothing listens on (at the moment of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float | None:
    """The resident memory of a process in MB (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class Tally:
    """What the client threads record, under one lock."""

    latencies_ms: list[float] = field(default_factory=list)  # answered requests
    requests: int = 0
    errors: int = 0
    messages: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, latency_ms: float | None, error: str | None) -> None:
        with self.lock:
            if latency_ms is not None:
                self.requests += 1
            if error is None and latency_ms is not None:
                self.latencies_ms.append(latency_ms)
            if error is not None:
                self.errors += 1
                if len(self.messages) < SHOWN_ERRORS:
                    self.messages.append(error[:300])


class Sampler(threading.Thread):
    """The app's RSS every RSS_EVERY seconds until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.samples: list[float] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while True:
            value = rss_mb(self.pid)
            if value is not None:
                self.samples.append(value)
            if self.stopping.wait(RSS_EVERY):
                return


def ask(client: Any, question: str, timeout: float) -> str | None:  # noqa: ANN401
    """One /ask in extractive mode; the error, or None when an answer came back."""
    job = client.submit(question, api_name="/ask", mode="extractive")
    try:
        got = job.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        job.cancel()
        return f"TimeoutError: no answer within {timeout:g} s"
    if not isinstance(got, dict) or "answer" not in got:
        return f"no 'answer' in the result: {str(got)[:200]}"
    return None


def run_user(number: int, url: str, deadline: float, tally: Tally) -> None:
    """One simulated user: its own client, questions back to back until the deadline."""
    from gradio_client import Client

    try:
        client = Client(url, verbose=False)
    except Exception as exc:
        tally.add(None, f"user {number} could not connect: {type(exc).__name__}: {exc}")
        return
    try:
        turn = number
        while time.monotonic() < deadline:
            question = QUESTIONS[turn % len(QUESTIONS)]
            turn += 1
            started = time.perf_counter()
            try:
                error = ask(client, question, REQUEST_TIMEOUT)
            except Exception as exc:
                error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            tally.add((time.perf_counter() - started) * 1000, error)
            if error:
                logger.info("user %d: %r failed: %s", number, question, error)
    finally:
        client.close()


def start_app(data_dir: Path, collection: str, port: int, log: Path
              ) -> subprocess.Popen[bytes]:
    """`python app.py` on HOST:port over that store, its output to `log`."""
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_COLLECTION": collection,
           "RAG_PORT": str(port), "RAG_HOST": HOST, "RAG_ANSWER_CONCURRENCY": "2",
           "RAG_QUEUE_MAX": "256", "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("RAG_AUTH", None)
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> float:
    """Seconds until /ask answered; RuntimeError if the app died or took too long."""
    from gradio_client import Client

    started = time.monotonic()
    while True:
        left = timeout - (time.monotonic() - started)
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}:\n{tail(log)}")
        if left <= 0:
            raise RuntimeError(f"the app did not answer within {timeout:g} s:\n{tail(log)}")
        try:
            client = Client(url, verbose=False)
        except Exception:  # not listening yet
            time.sleep(1.0)
            continue
        try:
            error = ask(client, QUESTIONS[0], max(left, 1.0))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            client.close()
        if error is None:
            return time.monotonic() - started
        logger.info("app not ready yet: %s", error)
        time.sleep(1.0)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """Terminate a process this benchmark started; kill it if it does not go."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        logger.warning("pid %d did not stop within %g s; killing it", proc.pid, grace)
        proc.kill()
        proc.wait(timeout=grace)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


_PROBLEM = re.compile(r"\b(ERROR|CRITICAL|WARNING|Traceback|Exception)\b")


def log_problems(path: Path, limit: int = 10) -> tuple[int, list[str]]:
    """How many lines of a log look like trouble, and the first few of them."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return 0, []
    found = [line.strip() for line in lines if _PROBLEM.search(line)]
    return len(found), [line[:300] for line in found[:limit]]

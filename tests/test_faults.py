"""Two rows of the reliability matrix, against real servers on loopback.

A. An LLM endpoint that answers 500 / 401 / 429, cuts its stream, or hangs: the
   question is answered in bounded time, extractively, with one clear notice line
   (a fake OpenAI-compatible server, `FakeLLM`, that fails in the way its URL names).
B. The Chroma server stopped while the app runs: the API and the chat say so in one
   line, at once, and answers resume by themselves when it is back (`chroma run`
   stopped and started again on the same port and folder).

Already covered elsewhere:
- an LLM server process that dies mid-answer: test_llama_check.py
  `test_the_app_says_a_server_died_mid_answer`;
- a closed LLM port: test_llm_answers.py `test_server_down_gives_extractive_answer`,
  `test_cli_server_down_prints_one_note`;
- a model slower than RAG_LLM_TIMEOUT:
  `test_real_server_answer_stops_at_the_wall_clock_deadline`, test_web_safety.py
  `test_llm_answers_stop_at_the_deadline_and_on_cancel`;
- a wrong key on the real server: `test_wrong_api_key_gives_extractive_answer` (slow);
- a Chroma server down at start-up: test_store_lifecycle.py
  `test_unreachable_chroma_server_is_a_clear_error`.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from support.fakes import first_sentence_of_passage_1, sse
from support.servers import CHROMA, ChromaServer, QuietHandler, QuietServer, free_port

from ingest.pipeline import ingest
from rag.answer.engine import Engine
from rag.answer.request import Ask
from rag.settings import Settings
from rag.store.articles import ArticleStore
from rag.store.connection import forget
from web import server as web_server
from web.service import NewsApp

SEED = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "seed"
QUESTION = "Why did relations between Iran and Azerbaijan sour?"
LLM_TIMEOUT = 3.0
LLM_BOUND = LLM_TIMEOUT * 2 + 10  # loose: catches a hang, not a slow machine
OUTAGE_BOUND = 30.0  # seconds a question may take to fail while the store is down
RECOVERY = 20.0  # seconds answers may take to resume after the store is back
FALLBACK = "showing the extractive answer instead"

pytestmark = [
    pytest.mark.skipif(not SEED.is_dir(), reason=f"shared corpora missing: {SEED}"),
    pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword)"),
]

T = TypeVar("T")


def assert_one_clear_line(text: str) -> None:
    """A message a user can read: one short line, no stack trace."""
    assert text.strip(), "no message at all"
    assert "\n" not in text.strip(), text
    assert "Traceback" not in text and 'File "' not in text, text
    assert len(text) < 300, text


# -- A. a misbehaving LLM endpoint -------------------------------------------------------


class FakeLLM:
    """An OpenAI-compatible endpoint whose `/<fault>/v1/chat/completions` fails that way:

    http500, http401: that status with an OpenAI-style error body;
    http429: 429 with `Retry-After: 1`; http429-wait: 429 with `Retry-After: 30`;
    cut: a chunked SSE stream, two `data:` events, then the connection closes;
    cut-eof: the same stream framed by the connection's end (no chunking), closed early;
    hang: reads the request and never sends a header.
    `calls` counts the requests of each fault."""

    STATUS = {"http500": 500, "http401": 401, "http429": 429, "http429-wait": 429}
    RETRY_AFTER = {"http429": "1", "http429-wait": "30"}

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.release = threading.Event()  # ends the hanging handlers at teardown
        lock = threading.Lock()
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.json_body()
                fault = self.path.strip("/").split("/", 1)[0]
                if not self.path.endswith("/v1/chat/completions"):
                    self.send_error(404)
                    return
                with lock:
                    fake.calls[fault] += 1
                if fault == "hang":
                    fake.release.wait(120)
                    self.close_connection = True
                    return
                if fault in fake.STATUS:
                    self.error(fake.STATUS[fault], fake.RETRY_AFTER.get(fault))
                    return
                if fault in ("cut", "cut-eof"):
                    prompt = str((body.get("messages") or [{}])[-1].get("content", ""))
                    self.cut_stream(first_sentence_of_passage_1(prompt), chunked=fault == "cut")
                    return
                self.send_error(404)

            def error(self, status: int, retry_after: str | None) -> None:
                payload = json.dumps({"error": {"message": f"fake failure {status}",
                                                "type": "fake", "code": status}}).encode()
                self.send_response(status)
                if retry_after:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def cut_stream(self, sentence: str, chunked: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Connection", "close")
                self.end_headers()
                for event in (sse(f"{sentence} [1] "), sse("The visit comes after")):
                    data = b"%x\r\n%s\r\n" % (len(event), event) if chunked else event
                    self.wfile.write(data)
                    self.wfile.flush()
                    time.sleep(0.1)
                # no `data: [DONE]`, no finish_reason, no last chunk: the line just drops
                self.close_connection = True

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, name="fake-llm", daemon=True).start()

    def base_url(self, fault: str) -> str:
        return f"{self.url}/{fault}/v1"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass(frozen=True)
class Fault:
    name: str
    expect: str  # regex the notice must match: the problem, named ({url}: the endpoint)


FAULTS = [
    Fault("http500", r"the LLM endpoint {url} answered HTTP 500"),
    Fault("http401", r"the LLM endpoint {url} rejected the API key \(401\)"),
    Fault("http429", r"the LLM endpoint {url} is rate-limiting requests \(429\)"),
    # a Retry-After longer than the deadline: said at once, never slept through
    Fault("http429-wait", r"the LLM endpoint {url} is rate-limiting requests \(429\)"),
    # the server is still up (it only cut the line): not called a crash
    Fault("cut", r"the LLM endpoint {url} dropped the connection mid-answer"),
    # the connection's close ends the body: only the missing finish reason tells
    Fault("cut-eof", r"the LLM's answer was cut off: the LLM endpoint {url} dropped the "
                     r"connection mid-answer"),
    Fault("hang", r"did not finish within 3 s"),
]


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    yield server
    server.close()


@pytest.fixture(scope="module")
def seed_store(tmp_path_factory: pytest.TempPathFactory) -> ArticleStore:
    """The seed article, ingested once (an embedded store) for every fault."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("faults_llm"), collection="faults-llm",
                        chroma_host=None, llm_model=None, openai_base_url=None)
    store = ArticleStore(settings)
    report = ingest([str(SEED)], store, settings, progress=False)
    assert report.count("added") == 1, report.summary()
    return store


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_llm_endpoint_fault_gives_extractive_answer_with_one_notice(
        fault: Fault, seed_store: ArticleStore, fake_llm: FakeLLM) -> None:
    """The model is called and fails; the answer still comes, in bounded time, extractive
    and cited, with one notice line that names the problem."""
    base_url = fake_llm.base_url(fault.name)
    settings = seed_store.settings.model_copy(update={
        "llm_model": "fake", "openai_base_url": base_url, "openai_api_key": "x",
        "llm_timeout": LLM_TIMEOUT, "answer_mode": "auto"})
    calls = fake_llm.calls[fault.name]
    started = time.monotonic()
    result = Engine.from_settings(settings, store=seed_store).ask(Ask(QUESTION))
    took = time.monotonic() - started

    assert took < LLM_BOUND, f"{took:.1f} s"
    assert fake_llm.calls[fault.name] > calls  # the model was asked (and failed)
    assert not result.refused and result.answer and result.citations
    named = re.search(fault.expect.format(url=re.escape(base_url)), result.notice)
    assert result.mode == "extractive" and result.model is None
    assert_one_clear_line(result.notice)
    assert result.notice.count(FALLBACK) == 1, result.notice
    assert named, result.notice


# -- B. the Chroma server stopped while the app runs -------------------------------------


@pytest.fixture(scope="module")
def chroma_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The app on a Chroma server holding the seed article, served on loopback."""
    if not CHROMA.is_file():
        pytest.skip(f"no chroma executable next to {sys.executable}")
    root = tmp_path_factory.mktemp("faults_chroma")
    server = ChromaServer(root)
    server.start()
    settings = Settings(data_dir=root / "local", collection="faults", chroma_host="127.0.0.1",
                        chroma_port=server.port, llm_model=None, openai_base_url=None,
                        answer_mode="auto")
    try:
        news = NewsApp(settings)
        assert ingest([str(SEED)], news.store, settings, progress=False).count("added") == 1
        port = free_port()
        demo = web_server.start(news, "127.0.0.1", port, block=False)
        try:
            yield SimpleNamespace(server=server, app=news, settings=settings,
                                  client=Client(f"http://127.0.0.1:{port}/", verbose=False))
        finally:
            demo.close()
    finally:
        server.stop()
        forget(settings)


def eventually(call: Callable[[], T], limit: float = RECOVERY) -> T:
    """call()'s value once it stops failing (the first calls after a restart may)."""
    deadline = time.monotonic() + limit
    while True:
        try:
            return call()
        except AppError as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"still failing after {limit:g} s: {exc}") from exc
            time.sleep(1)


def names_the_chroma_server(line: str, port: int) -> bool:
    return bool(re.search(rf"chroma server (at )?127\.0\.0\.1:{port}\b", line, re.I)
                and re.search(r"cannot reach|connection refused|unreachable|not reachable",
                              line, re.I))


def test_chroma_server_stopped_ask_fails_in_one_line_and_recovers(
        chroma_app: SimpleNamespace) -> None:
    """/ask while the Chroma server is down fails at once with one line naming the server;
    after it is started again (same port, same folder) /ask answers, the app untouched."""
    client, server = chroma_app.client, chroma_app.server
    before = client.predict(QUESTION, api_name="/ask")
    assert not before["refused"] and before["citations"]

    server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(AppError) as info:
            client.predict(QUESTION, api_name="/ask")
        took = time.monotonic() - started
    finally:
        server.start()
    line = str(info.value)
    assert took < OUTAGE_BOUND, f"{took:.1f} s"
    assert_one_clear_line(line)
    assert names_the_chroma_server(line, server.port), line

    after = eventually(lambda: client.predict(QUESTION, api_name="/ask"))
    assert not after["refused"] and after["citations"]
    assert after["answer"] == before["answer"]


def test_chroma_server_stopped_chat_says_so_in_one_line_and_recovers(
        chroma_app: SimpleNamespace) -> None:
    """The chat while the Chroma server is down shows one line naming the server (not a
    bare error); once it is back the next question is answered."""
    client, server = chroma_app.client, chroma_app.server

    def last_message(messages: list[dict[str, Any]]) -> str:
        return str(messages[-1]["content"][0]["text"])

    def chat() -> str:
        """The HTML of the chat's last message, for the question in a new chat."""
        job = client.submit(QUESTION, [], [], [], "", "", "auto", api_name="/chat")
        messages, *_ = job.result(timeout=120)
        return last_message(messages)

    assert "rag-cite" in chat()

    server.stop()
    outage, error = "", ""
    try:
        started = time.monotonic()
        job = client.submit(QUESTION, [], [], [], "", "", "auto", api_name="/chat")
        try:
            outage = last_message(job.result(timeout=120)[0])
        except AppError as exc:
            shown = job.outputs()
            outage = last_message(shown[-1][0]) if shown else ""
            error = str(exc)
        took = time.monotonic() - started
    finally:
        server.start()
    assert took < OUTAGE_BOUND, f"{took:.1f} s"

    assert "rag-cite" in eventually(chat)  # the app, untouched, answers again

    assert not error, error
    assert "Could not answer" in outage and "rag-error" in outage, outage
    text = re.sub(r"<[^>]+>", "", outage)
    assert_one_clear_line(text)
    assert names_the_chroma_server(text, server.port), text

"""The app is safe to put on a network: every finding of the security review, as a test
against the real app over HTTP on loopback (gradio_client and plain httpx).

Each test names the finding it guards (issue 8): server files through "Add URLs",
internal addresses, unbounded downloads, uploads, lane-holding requests, LLM answers
without a deadline, login, leaks.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from gradio.utils import get_upload_folder
from gradio_client import Client, handle_file
from support.servers import QuietHandler, free_port

from web import limits
from web.auth import LoginThrottle, User, load_users, parse_users
from web.server import start
from web.service import NewsApp
from web.ui import chat

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword)")

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT.parent / "shared" / "corpora" / "seed"
USERS = {"ed": User("ed", "ed-pw-1", "editor"), "rd": User("rd", "rd-pw-1", "reader"),
         "rd2": User("rd2", "rd2-pw", "reader")}
SECRET = "The launch code of the vault is PELICAN-4471, the quartermaster wrote on Monday."


def _refusal(call: Any) -> str:
    """The message of a refused API call (gradio_client raises AppError with it)."""
    with pytest.raises(Exception) as info:  # noqa: PT011 - gradio_client's AppError
        call()
    return str(info.value)


# -- a drip server: pages, slow bodies and a fake OpenAI-compatible stream ---------------


class Drip:
    """A loopback HTTP server whose answers can trickle; it records what it saw."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.disconnected = threading.Event()
        self.streaming = threading.Event()
        drip = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                drip.requests.append(self.path)
                if self.path.startswith("/slow"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "400")
                    self.end_headers()
                    for _ in range(40):
                        try:
                            self.wfile.write(b"slow words ")
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(0.5)
                    return
                body = (b"Quiet harbour news\n\nThe harbour master reported calm seas and "
                        b"a record catch of herring on Tuesday, local fishermen said.\n")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                drip.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                drip.streaming.set()
                for i in range(400):  # a model that never finishes on time
                    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0,
                             "model": "drip", "choices": [{"index": 0, "finish_reason": None,
                                                           "delta": {"content": f"word{i} "}}]}
                    try:
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    except OSError:
                        drip.disconnected.set()
                        return
                    time.sleep(0.25)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def drip() -> Iterator[Drip]:
    server = Drip()
    yield server
    server.close()


def _start(settings: Any, users: dict[str, User] | None = USERS, engine: Any = None
           ) -> tuple[Any, Any, str]:
    news = NewsApp(settings, engine=engine)
    port = free_port()
    demo = start(news, "127.0.0.1", port, users, block=False)
    return news, demo, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, drip: Drip) -> Iterator[SimpleNamespace]:
    from ingest.pipeline import ingest
    from rag.settings import Settings

    data = tmp_path_factory.mktemp("web_safety")
    settings = Settings(data_dir=data, collection="websafety", max_file_mb=1,
                        fetch_timeout=2, max_paste_chars=5000, max_question_chars=300,
                        max_urls=3, max_history_turns=3)
    secrets_dir = tmp_path_factory.mktemp("server_files")
    (secrets_dir / "vault.txt").write_text(f"Vault memo\n\n{SECRET}\n")
    (secrets_dir / "inner").mkdir()
    (secrets_dir / "inner" / "more.txt").write_text(f"More memos\n\n{SECRET}\n")
    news, demo, url = _start(settings)
    assert ingest([str(SEED)], news.store, settings, progress=False).count("added") == 1
    try:
        yield SimpleNamespace(url=url, app=news, settings=settings, data=data,
                              secrets=secrets_dir,
                              ed=Client(url, verbose=False, auth=("ed", "ed-pw-1")),
                              rd=Client(url, verbose=False, auth=("rd", "rd-pw-1")))
    finally:
        demo.close()


def _wait_for(condition: Any, limit: float = 30.0) -> None:
    ends = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < ends, "timed out waiting"
        time.sleep(0.05)


def _titles(site: SimpleNamespace) -> list[str]:
    return sorted(r["title"] for r in site.ed.predict("", api_name="/library"))


# -- 1. server files through "Add URLs" ---------------------------------------------


def test_add_urls_never_reads_server_paths_folders_or_stdin(site: SimpleNamespace) -> None:
    before = _titles(site)
    vault = str(site.secrets / "vault.txt")
    attempts = [[vault], [str(site.secrets)], ["-"], [f"file://{vault}"],
                [str(site.secrets / "no-such-file.txt")], [vault.replace(".txt", ".docx")],
                ["https://example.org/ok", vault]]
    messages = []
    for refs in attempts:
        msg = _refusal(lambda refs=refs: site.ed.predict(refs, "", api_name="/add_urls"))
        assert "Only http:// and https:// URLs" in msg
        messages.append(msg.replace(repr(refs[-1][:80]), "<ref>"))
    # an existing file, a folder and a missing file are refused with the same words
    assert len({messages[0], messages[1], messages[4], messages[5]}) == 1
    # the UI's own button takes the same route
    msg = _refusal(lambda: site.ed.predict(vault, "", api_name="/add_urls_ui"))
    assert "Only http:// and https:// URLs" in msg
    assert _titles(site) == before
    got = site.ed.predict("What is the launch code of the vault?", api_name="/ask")
    assert "PELICAN" not in json.dumps(got)


def test_ingest_with_local_false_refuses_paths_without_looking(site: SimpleNamespace) -> None:
    from ingest.pipeline import ingest

    report = ingest([str(site.secrets / "vault.txt"), str(site.secrets), "-"],
                    site.app.store, site.settings, progress=False, local=False)
    assert [r.status for r in report.results] == ["failed"] * 3
    assert {r.reason for r in report.results} == {"not an http(s) URL"}


# -- 2. internal addresses (SSRF) -----------------------------------------------------


def test_add_urls_refuses_loopback_names_and_redirects_with_one_neutral_error(
        site: SimpleNamespace, drip: Drip) -> None:
    port = drip.url.rsplit(":", 1)[1]
    closed = free_port()
    urls = [f"{drip.url}/page", f"http://localhost:{port}/page", f"http://127.0.0.1:{closed}/x"]
    seen = len(drip.requests)
    report = site.ed.predict(urls, "", api_name="/add_urls")
    reasons = {r["reason"] for r in report["results"]}
    assert [r["status"] for r in report["results"]] == ["failed"] * 3
    assert len(reasons) == 1, reasons  # open port, name, closed port: indistinguishable
    assert "not allowed or not reachable" in reasons.pop()
    assert len(drip.requests) == seen  # the internal server was never asked


def test_intranet_opt_in_fetches_and_the_download_has_one_deadline(
        site: SimpleNamespace, drip: Drip) -> None:
    settings = site.settings.override(fetch_allow="127.0.0.1/32")
    news = NewsApp(settings, engine=site.app.engine)
    report = news.run_ingest([f"{drip.url}/page", f"{drip.url}/slow"], {}, local=False)
    by_url = {r["source"].rsplit("/", 1)[-1]: r for r in report["results"]}
    assert by_url["page"]["status"] == "added", report
    assert by_url["slow"]["status"] == "failed"
    assert "timed out after 2 s" in by_url["slow"]["reason"]
    news.remove(by_url["page"]["article_id"])


# -- 4. uploads ------------------------------------------------------------------------


def test_upload_over_the_limit_is_refused_before_it_is_read(site: SimpleNamespace,
                                                            tmp_path: Path) -> None:
    from gradio.utils import get_upload_folder

    big = tmp_path / "huge.txt"
    with big.open("wb") as handle:  # sparse: 300 MB that take no disk
        handle.truncate(300 * 1024 * 1024)
    cache = Path(get_upload_folder())
    cached_before = {p for p in cache.rglob("*") if p.is_file()} if cache.exists() else set()
    msg = _refusal(lambda: site.ed.predict([handle_file(str(big))], "",
                                           api_name="/add_files"))
    assert "413" in msg or "size" in msg.lower()
    cached_after = {p for p in cache.rglob("*") if p.is_file()} if cache.exists() else set()
    assert not [p for p in cached_after - cached_before if p.name == "huge.txt"]
    assert not list((site.data / "uploads").rglob("huge.txt"))


def test_save_upload_checks_the_size_first_and_writes_atomically(site: SimpleNamespace,
                                                                 tmp_path: Path) -> None:
    over = tmp_path / "over.txt"
    over.write_bytes(b"x" * (site.settings.max_file_bytes + 1))
    assert site.app.uploads.save_upload(str(over)) == (None, "over.txt")
    ok = tmp_path / "fine.txt"
    ok.write_text("Fine news\n\nA fine day was had by all in the town square.\n")
    saved, name = site.app.uploads.save_upload(str(ok))
    assert name == "fine.txt" and Path(saved).read_text() == ok.read_text()
    assert not list((site.data / "uploads").glob(".part-*"))  # no half-written copies
    Path(saved).unlink()
    Path(saved).parent.rmdir()


# -- 5. requests that would hold a lane -------------------------------------------------


def test_oversized_paste_question_history_and_url_lists_are_refused(
        site: SimpleNamespace) -> None:
    started = time.monotonic()
    msg = _refusal(lambda: site.ed.predict("Big paste\n\n" + "word " * 200_000, "", "",
                                           api_name="/add_text"))
    assert "limit is 5,000 (RAG_MAX_PASTE_CHARS)" in msg
    msg = _refusal(lambda: site.ed.predict("why " * 300_000, api_name="/ask"))
    assert "limit is 300 (RAG_MAX_QUESTION_CHARS)" in msg
    history = [{"role": r, "content": "earlier"} for _ in range(5) for r in ("user", "assistant")]
    msg = _refusal(lambda: site.ed.predict("and then?", history, api_name="/ask"))
    assert "RAG_MAX_HISTORY_TURNS" in msg
    msg = _refusal(lambda: site.ed.predict([f"https://example.org/{i}" for i in range(4)], "",
                                           api_name="/add_urls"))
    assert "limit is 3 a request (RAG_MAX_URLS)" in msg
    assert time.monotonic() - started < 60  # refused at the door, not after the work
    # in the chat: the question is refused with the reason and stays in the box
    job = site.ed.submit("why " * 500, [], [], [], "", "", "auto", api_name="/chat")
    chat, *_ = job.result(timeout=60)
    assert "RAG_MAX_QUESTION_CHARS" in chat[-1]["content"][0]["text"]


def test_short_fields_filters_and_exports_are_bounded(site: SimpleNamespace) -> None:
    long = "x" * (limits.FIELD_CHARS + 1)
    before = _titles(site)
    for call, what in (
        (lambda: site.ed.predict(long, api_name="/library"), "search"),
        (lambda: site.ed.predict("Headline\n\nBody text of a short article here.", long, "",
                                 api_name="/add_text"), "headline"),
        (lambda: site.ed.predict("Headline\n\nBody text of a short article here.", "", long,
                                 api_name="/add_text"), "outlet"),
        (lambda: site.ed.predict(long, api_name="/remove"), "article id"),
        (lambda: site.ed.predict(["https://example.org/" + "a" * limits.URL_CHARS], "",
                                 api_name="/add_urls"), "URL"),
    ):
        assert f"The {what} is {len(long) if what != 'URL' else limits.URL_CHARS + 20:,}" \
            in _refusal(call)
    assert _titles(site) == before
    for kw in ({"article_ids": ["a"] * (limits.FILTER_ITEMS + 1)}, {"outlets": [long]}):
        msg = _refusal(lambda kw=kw: site.ed.predict("When did they meet?", api_name="/ask",
                                                     **kw))
        assert "filter is too large" in msg
    for bad in ("2025-13-01", "tomorrow", long):  # the answer-as-of day: a date or nothing
        msg = _refusal(lambda bad=bad: site.ed.predict("When did they meet?", as_of=bad,
                                                       api_name="/ask"))
        assert "as_of" in msg and "YYYY-MM-DD" in msg and len(msg) < 300
    turn = {"question": "q", "result": {"answer": "y" * limits.EXPORT_CHARS}}
    assert "characters as JSON" in _refusal(lambda: site.ed.predict([turn], api_name="/export"))


def test_a_full_queue_answers_busy(site: SimpleNamespace, drip: Drip) -> None:
    settings = site.settings.model_copy(update={"queue_max": 1, "fetch_allow": "127.0.0.1",
                                                "fetch_timeout": 6})
    news, demo, url = _start(settings, engine=site.app.engine)
    try:
        clients = [Client(url, verbose=False, auth=("ed", "ed-pw-1")) for _ in range(3)]
        slow = [f"{drip.url}/slow"]
        seen = drip.requests.count("/slow")
        first = clients[0].submit(slow, "", api_name="/add_urls")
        _wait_for(lambda: drip.requests.count("/slow") > seen)  # it holds the library lane
        second = clients[1].submit(slow, "", api_name="/add_urls")
        _wait_for(lambda: len(demo._queue) >= 1)  # it waits in the queue: the queue is full
        msg = _refusal(lambda: clients[2].predict(slow, "", api_name="/add_urls"))
        assert "try again" in msg.lower()  # gradio's own words: "Queue is full! Please..."
        first.result(timeout=60)
        second.result(timeout=60)
    finally:
        demo.close()


# -- 6. LLM answers without a deadline ---------------------------------------------------


def test_llm_answers_stop_at_the_deadline_and_on_cancel(site: SimpleNamespace,
                                                        drip: Drip) -> None:
    from rag.answer.engine import Engine

    settings = site.settings.model_copy(update={
        "llm_model": "drip", "openai_base_url": f"{drip.url}/v1", "openai_api_key": "k",
        "llm_timeout": 8.0, "answer_concurrency": 2})
    engine = Engine.from_settings(settings, store=site.app.store)
    news, demo, url = _start(settings, engine=engine)
    try:
        client = Client(url, verbose=False, auth=("rd", "rd-pw-1"))
        started = time.monotonic()
        got = client.predict("Why did relations between Iran and Azerbaijan sour?",
                             mode="llm", api_name="/ask")
        took = time.monotonic() - started
        assert "did not finish within 8 s" in got["notice"] and got["mode"] == "extractive"
        assert took < 40, took  # not the 100 s the model would have taken
        assert drip.disconnected.wait(10)  # and the model was told to stop

        # another user's question is answered while an LLM answer streams
        drip.disconnected.clear()
        drip.streaming.clear()
        job = client.submit("Why did relations between Iran and Azerbaijan sour?", [], [], [],
                            "", "", "llm", api_name="/chat")
        assert drip.streaming.wait(30)
        other = Client(url, verbose=False, auth=("rd2", "rd2-pw"))
        quick = other.predict("When did Pezeshkian meet Aliyev?", mode="extractive",
                              api_name="/ask")
        assert quick["citations"] and not job.done()
        job.cancel()  # the user stops it: the connection to the model is cut
        assert drip.disconnected.wait(10)
    finally:
        demo.close()


# -- 8. login ----------------------------------------------------------------------------


def test_only_editors_upload_to_gradios_cache(site: SimpleNamespace) -> None:
    """Gradio's upload route only asks for a login: a reader's file would stay in its
    cache (no handler ever sees it). Refused for readers and for nobody logged in."""
    cache = Path(get_upload_folder())
    before = set(cache.rglob("sneaky-*"))
    files = {"files": ("sneaky-upload.txt", b"a reader's file", "text/plain")}
    with httpx.Client(base_url=site.url) as reader:
        assert reader.post("login", data={"username": "rd", "password": "rd-pw-1"}
                           ).status_code == 200
        refused = reader.post("gradio_api/upload", files=files)
        assert refused.status_code == 403
        assert refused.json()["detail"] == "Only editors may upload files."
    assert httpx.post(site.url + "gradio_api/upload", files=files).status_code in (401, 403)
    assert set(cache.rglob("sneaky-*")) == before
    with httpx.Client(base_url=site.url) as editor:
        assert editor.post("login", data={"username": "ed", "password": "ed-pw-1"}
                           ).status_code == 200
        kept = editor.post("gradio_api/upload", files={"files": ("fine.txt", b"ok")})
        assert kept.status_code == 200, kept.text


def test_failed_logins_are_throttled_per_user_and_per_address(site: SimpleNamespace) -> None:
    login = site.url + "login"
    codes = [httpx.post(login, data={"username": "rd", "password": f"guess{i}"}).status_code
             for i in range(30)]
    assert codes[:5] == [400] * 5 and set(codes[5:]) == {429}
    # the right password is refused too while the user is locked, and says when to retry
    locked = httpx.post(login, data={"username": "rd", "password": "rd-pw-1"})
    assert locked.status_code == 429 and "try again in" in locked.json()["detail"]
    assert int(locked.headers["retry-after"]) > 0
    # another user from the same address still logs in
    assert httpx.post(login, data={"username": "ed", "password": "ed-pw-1"}).status_code == 200
    # guessing across many names is stopped per address
    codes = [httpx.post(login, data={"username": f"user{i}", "password": "x"}).status_code
             for i in range(30)]
    assert 429 in codes and codes.count(400) <= 20


def test_login_throttle_window_and_success_forgives() -> None:
    now = [0.0]
    throttle = LoginThrottle(max_failures=2, window=10, clock=lambda: now[0])
    keys = {"user:a": 2}
    throttle.attempt(["user:a"])
    stamp = throttle.attempt(["user:a"])
    assert throttle.retry_after(keys) == 10
    throttle.forgive("user:a", stamp)
    assert throttle.retry_after(keys) == 0
    throttle.attempt(["user:a"])
    now[0] = 10.5
    assert throttle.retry_after(keys) == 0  # the first failure has left the window


def test_login_throttle_forgets_names_whose_failures_left_the_window(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import web.auth

    monkeypatch.setattr(web.auth, "STALE_SWEEP_KEYS", 50)
    now = [0.0]
    throttle = LoginThrottle(max_failures=2, window=10, clock=lambda: now[0])
    for i in range(50):  # a guesser spraying user names
        throttle.attempt([f"user:{i}"])
    now[0] = 11.0
    throttle.attempt(["user:late"])
    assert list(throttle._failures) == ["user:late"]


def test_users_file_is_one_entry_a_line_with_roles(tmp_path: Path) -> None:
    users_file = tmp_path / "users"
    users_file.write_text("# newsroom\nalice:pa,ss:word\nbob:hunter2:editor\ncarol:x:y:reader\n")
    users = load_users(str(users_file))
    assert users == {"alice": User("alice", "pa,ss:word", "reader"),
                     "bob": User("bob", "hunter2", "editor"),
                     "carol": User("carol", "x:y", "reader")}
    assert parse_users("dan:pw:editor,erin:pw2")["erin"].role == "reader"


def test_readers_ask_and_export_but_cannot_add_or_remove(site: SimpleNamespace,
                                                         tmp_path: Path) -> None:
    article_id = site.app.store.list_articles()[0].id
    note = tmp_path / "note.txt"
    note.write_text("A note\n\nThe reader tried to add this note to the library today.\n")
    for call in (lambda: site.rd.predict(article_id, api_name="/remove"),
                 lambda: site.rd.predict("Some text\n\nlong enough to be an article here.", "",
                                         "", api_name="/add_text"),
                 lambda: site.rd.predict(["https://example.org/a"], "", api_name="/add_urls")):
        assert "Only editors may add or remove articles" in _refusal(call)
    with pytest.raises(Exception, match="403"):  # the file is refused before gradio keeps it
        site.rd.predict([handle_file(str(note))], "", api_name="/add_files")
    assert site.app.store.get_article(article_id) is not None
    got = site.rd.predict("When did Pezeshkian meet Aliyev?", api_name="/ask")
    assert got["citations"]
    assert "## 1. " in site.rd.predict([{"question": "q", "result": got}], api_name="/export")


# -- 9. leaks ----------------------------------------------------------------------------


def test_web_users_see_source_names_never_server_paths(site: SimpleNamespace) -> None:
    rows = site.ed.predict("", api_name="/library")
    assert rows and all(not r["source"].startswith("/") for r in rows)
    assert rows[0]["source"] == "iran-azerbaijan-baku-meeting.txt"
    got = site.ed.predict("Why did relations between Iran and Azerbaijan sour?",
                          api_name="/ask")
    assert got["citations"]
    for item in got["citations"] + got["retrieved"]:
        assert item["file_path"] == "iran-azerbaijan-baku-meeting.txt"
    assert str(site.data) not in json.dumps(got) and str(SEED) not in json.dumps(got)
    assert str(site.data) not in site.ed.predict("", api_name="/library").__repr__()
    pasted = site.ed.predict("Tide tables\n\nThe spring tide will reach its peak on Friday "
                             "evening, the harbour office said.", "", "", api_name="/add_text")
    row = site.ed.predict("tide tables", api_name="/library")[0]
    assert row["source"].startswith("uploads/") and row["source"].endswith("/pasted.txt")
    site.ed.predict(pasted["results"][0]["article_id"], api_name="/remove")


def test_errors_are_one_line_without_internals_and_exports_wait_for_a_click(
        site: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    exports = chat.EXPORTS
    before = set(exports.rglob("*.md")) if exports.exists() else set()
    job = site.ed.submit("When did Pezeshkian meet Aliyev?", [], [], [], "", "", "auto",
                         api_name="/chat")
    job.result(timeout=120)
    after = set(exports.rglob("*.md")) if exports.exists() else set()
    assert after == before  # answering writes no export file

    def broken(*args: object, **kwargs: object) -> Iterator[str]:
        raise RuntimeError(f"database at {site.data}/secret.sqlite3 exploded")
        yield ""  # pragma: no cover

    monkeypatch.setattr(site.app.engine, "stream", broken)
    job = site.ed.submit("When did they meet?", [], [], [], "", "", "auto", api_name="/chat")
    text = job.result(timeout=60)[0][-1]["content"][0]["text"]
    assert "something went wrong on the server" in text
    assert "exploded" not in text and "RuntimeError" not in text and str(site.data) not in text
    msg = _refusal(lambda: site.ed.predict("When did they meet?", api_name="/ask"))
    assert "exploded" not in msg and str(site.data) not in msg

"""The app without a browser: rendering (web/ui/render.py), login settings (web/auth.py),
and the running app's API through gradio_client, over the seed article."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from gradio_client import Client, handle_file
from support.servers import free_port

from ingest.fetch import UNREACHABLE
from rag.answer.condense import history_of
from rag.types import Answer, AnswerSentence, Citation, Turn
from web import server as web_server
from web.auth import (
    AuthError,
    User,
    bind_warning,
    checker,
    is_loopback,
    load_users,
    parse_users,
)
from web.limits import parse_date
from web.service import NewsApp
from web.ui import chat, export, render

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword)")

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT.parent / "shared" / "corpora" / "seed"
SEED_TITLE = "Iranian president Pezeshkian meets Azerbaijani leader Aliyev to improve ties"
XSS_TITLE = "<script>window.__xss=1</script> Harbour <b>bold</b> plan"
XSS_TEXT = (
    f"{XSS_TITLE}\n\n"
    "The Harbour Authority approved the new breakwater on Monday. "
    '<img src=x onerror="window.__xss=2"> The breakwater will cost 40 million dollars '
    "and protect the fishing fleet from winter storms, officials said.\n\n"
    "Construction of the breakwater starts in spring and takes two years.\n"
)




# -- rendering ----------------------------------------------------------------

ARTICLE = ("Intro words here. " * 30 + "The embassy reopened in mid-2024 after talks. "
           + "Closing words follow. " * 30)
SPAN = "The embassy reopened in mid-2024 after talks."


def _citation(n: int = 1, **kw: object) -> Citation:
    start = ARTICLE.index(SPAN)
    fields = {"n": n, "article_id": "a1", "title": "Envoys return", "url": None,
              "path": "/data/uploads/envoys.txt", "published": "2024-07-01",
              "chunk_id": "a1:v:0", "start": start, "end": start + len(SPAN), "quote": SPAN,
              "outlet": "Daily"}
    fields.update(kw)
    return Citation(**fields)  # type: ignore[arg-type]


def _result(**kw: object) -> Answer:
    fields = {
        "question": "when did the embassy reopen?", "standalone_question": "when did it reopen?",
        "answer": f"{SPAN} [1] It cost 5 million. [1]", "refused": False, "mode": "extractive",
        "model": None, "citations": [_citation()],
        "sentences": [AnswerSentence(text=SPAN, citations=[1], supported=True, score=1.0),
                      AnswerSentence(text="It cost 5 million.", citations=[1], supported=False,
                                     score=0.2)],
        "timings_ms": {"total": 1234.0},
    }
    fields.update(kw)
    return Answer(**fields)  # type: ignore[arg-type]


def test_passage_context_marks_the_span_inside_about_300_characters() -> None:
    start = ARTICLE.index(SPAN)
    snip = render.passage_context(ARTICLE, start, start + len(SPAN), SPAN)
    assert snip.span == SPAN and snip.exact
    assert snip.cut_before and snip.cut_after
    assert 250 <= len(snip.before + snip.span + snip.after) <= 360
    # cut at word boundaries
    a = start - len(snip.before)
    b = start + len(SPAN) + len(snip.after)
    assert ARTICLE[a - 1] == " " and ARTICLE[b] == " " and not snip.before.startswith(" ")
    html = snip.html()
    assert html.startswith("…") and html.endswith("…")
    assert f"<mark>{SPAN}</mark>" in html


def test_passage_context_whole_short_article_and_stale_offsets() -> None:
    text = "Short article. The key fact is here. The end."
    snip = render.passage_context(text, 15, 36, "The key fact is here.")
    assert (snip.before, snip.span, snip.after) == ("Short article. ", "The key fact is here.",
                                                    " The end.")
    assert not snip.cut_before and not snip.cut_after
    moved = render.passage_context("New lead. " + text, 15, 36, "The key fact is here.")
    assert moved.span == "The key fact is here." and moved.exact  # found by its quote
    gone = render.passage_context(None, 15, 36, "The key fact is here.")
    assert gone.span == "The key fact is here." and not gone.exact


def test_answer_html_footnotes_open_sources_with_highlighted_span() -> None:
    out = render.answer_html(_result(), "t1-ab", lambda aid: ARTICLE if aid == "a1" else None)
    assert out.count('href="#t1-ab-src-1"') == 2  # both sentences cite source 1
    assert '<details class="rag-source" id="t1-ab-src-1">' in out
    assert f"<mark>{SPAN}</mark>" in out
    assert "Envoys return" in out and "Daily" in out and "2024-07-01" in out
    assert "file: <code>envoys.txt</code>" in out
    assert "characters " in out and "of the article" in out
    # the unsupported sentence is flagged, the supported one is not
    assert out.count("rag-unsupported") == 1 and "⚠ unsupported" in out
    assert "1 of 2 sentences are not supported" in out
    assert "Mode: <span class=\"rag-mode\">extractive" in out and "1.2 s" in out


def test_answer_html_llm_mode_url_link_refusal_and_notice() -> None:
    url = "https://news.example.com/world/envoys?id=1"
    out = render.answer_html(_result(mode="llm", model="smollm2", citations=[
        _citation(url=url, path=None)]), "x")
    assert "LLM: smollm2" in out
    assert f'href="{url}"' in out and 'rel="noopener noreferrer nofollow"' in out
    bad = render.answer_html(_result(citations=[_citation(url="javascript:alert(1)")]), "x")
    assert 'href="javascript' not in bad
    refused = render.answer_html(_result(refused=True, answer="The articles don't say.",
                                         citations=[], sentences=[], notice="no LLM"), "x")
    assert "The articles don&#x27;t say." in refused and "Note: no LLM" in refused
    assert "rag-source" not in refused


def test_everything_from_articles_is_escaped() -> None:
    evil = '<img src=x onerror="alert(1)">'
    result = _result(
        question=evil,
        citations=[_citation(title="<script>alert(1)</script>", outlet=evil,
                             published='"><svg onload=alert(1)>',
                             path='/x/"><script>alert(2)</script>.txt',
                             quote=SPAN)],
        sentences=[AnswerSentence(text=f"Quoted {evil} text.", citations=[1], supported=True,
                                  score=1.0)],
        notice="<b>bold</b>",
    )
    evil_article = ARTICLE.replace("Intro words here.", evil, 1)
    for out in (render.answer_html(result, '"><script>', lambda _: evil_article),
                render.streaming_html(f"partial {evil}"), render.message_html(evil),
                render.question_html(evil)):
        lowered = out.lower()
        assert "<script" not in lowered and "<img" not in lowered and "<svg" not in lowered
        assert "<b>" not in lowered
    out = render.answer_html(result, "p", lambda _: evil_article)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in out
    md = export.conversation_markdown([{"question": evil, "result": result.to_json()}])
    assert "<script" not in md and "<img" not in md and "&lt;img" in md


def test_conversation_markdown_has_questions_answers_and_sources() -> None:
    turns = [{"question": "when did the embassy reopen?", "result": _result().to_json()},
             {"question": "and then?", "result": _result(
                 refused=True, answer="The articles don't say.", citations=[],
                 sentences=[]).to_json()}]
    md = export.conversation_markdown(turns, now=__import__("datetime").datetime(2025, 1, 2))
    assert md.startswith("# News RAG conversation\n")
    assert "## 1. when did the embassy reopen?" in md and "## 2. and then?" in md
    assert f"{SPAN} [1]" in md and "It cost 5 million. [1] *(⚠ unsupported)*" in md
    assert "1. **Envoys return** — Daily, 2024-07-01 — `/data/uploads/envoys.txt`" in md
    assert f"   > {SPAN}" in md
    assert "*Mode: extractive" in md and "The articles don't say." in md
    assert export.conversation_markdown([Turn.model_validate(t) for t in turns],
                                        now=__import__("datetime").datetime(2025, 1, 2)) == md
    history = history_of(Turn.model_validate(t) for t in turns)
    assert history[0] == {"role": "user", "content": "when did the embassy reopen?",
                          "standalone": "when did it reopen?"}
    assert history[1]["role"] == "assistant" and history[1]["content"].startswith(SPAN)


# -- login settings -------------------------------------------------------------


def test_auth_setting_inline_file_and_errors(tmp_path: Path) -> None:
    assert load_users(None) is None and load_users("  ") is None
    assert load_users("alice:s3cret") == {"alice": User("alice", "s3cret", "reader")}
    assert load_users("alice:a:b, bob:pw:editor") == {"alice": User("alice", "a:b"),
                                                      "bob": User("bob", "pw", "editor")}
    users = tmp_path / "users"
    users.write_text("# team\nalice:one\n\nbob:two\n")
    assert load_users(str(users)) == {"alice": User("alice", "one"), "bob": User("bob", "two")}
    for bad in ("alice", "alice:", ":pw", "# only a comment", "a:1,a:2"):
        with pytest.raises(AuthError):
            parse_users(bad)
    with pytest.raises(AuthError, match="cannot read"):
        load_users(str(tmp_path / "missing"))
    check = checker({"alice": User("alice", "one")})
    assert check("alice", "one")
    assert not check("alice", "two") and not check("bob", "one") and not check("", "")


def test_non_loopback_without_login_warns() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert bind_warning("127.0.0.1", 7860, False) is None
    assert bind_warning("0.0.0.0", 7860, True) is None
    warning = bind_warning("0.0.0.0", 7860, False)
    assert warning and "0.0.0.0:7860" in warning and "RAG_AUTH" in warning


def test_launch_logs_the_warning_and_passes_login(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[dict[str, object]] = []

    class FakeDemo:
        def queue(self, **kw: object) -> FakeDemo:
            calls.append({"queue": kw})
            return self

        def launch(self, **kw: object) -> None:
            calls.append(kw)

    web_server.launch(FakeDemo(), "0.0.0.0", 9999, None)  # type: ignore[arg-type]
    assert "WARNING" in caplog.text and calls[-1]["auth"] is None
    assert calls[-1]["app_kwargs"] == {"middleware": []}  # no login: nothing to throttle
    assert calls[-1]["show_error"] is False and calls[-1]["max_file_size"] > 0
    assert calls[-2]["queue"]["max_size"] > 0
    caplog.clear()
    web_server.launch(FakeDemo(), "0.0.0.0", 9999, load_users("ann:pw"))  # type: ignore[arg-type]
    assert "WARNING" not in caplog.text
    login = calls[-1]["auth"]
    assert callable(login) and login("ann", "pw") and not login("ann", "nope")
    # the login throttle, and editors only at gradio's upload route
    assert [m.cls.__name__ for m in calls[-1]["app_kwargs"]["middleware"]] == [
        "LoginGuard", "UploadGuard"]
    web_server.launch(FakeDemo(), "127.0.0.1", 9999, None)  # type: ignore[arg-type]
    assert "WARNING" not in caplog.text


def test_parse_date() -> None:
    assert parse_date(None) is None and parse_date("") is None
    assert parse_date("2025-04-28") == date(2025, 4, 28)
    assert parse_date("2025-04-28 00:00:00") == date(2025, 4, 28)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_date("April")


# -- the running app, through gradio_client -------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    from ingest.pipeline import ingest
    from rag.settings import Settings

    data = tmp_path_factory.mktemp("app_api")
    settings = Settings(data_dir=data, collection="appapi", fetch_allow="127.0.0.1")
    news = NewsApp(settings)
    report = ingest([str(SEED)], news.store, settings, progress=False)
    assert report.count("added") == 1
    port = free_port()
    demo = web_server.start(news, "127.0.0.1", port, block=False)
    url = f"http://127.0.0.1:{port}/"
    try:
        yield SimpleNamespace(url=url, app=news, settings=settings, data=data,
                              client=Client(url, verbose=False))
    finally:
        demo.close()


def test_ask_returns_an_answer_whose_citations_quote_the_article(server: SimpleNamespace
                                                                 ) -> None:
    got = server.client.predict("Why did relations between Iran and Azerbaijan sour?",
                                api_name="/ask")
    assert not got["refused"] and got["mode"] == "extractive" and got["model"] is None
    assert got["citations"] and got["sentences"]
    article = server.app.store.get_article(got["citations"][0]["article_id"])
    assert article.title == SEED_TITLE
    for c in got["citations"]:
        assert article.text[c["start"]:c["end"]] == c["quote"]
        assert c["file_path"].endswith("iran-azerbaijan-baku-meeting.txt")
    cited = {n for s in got["sentences"] for n in s["citations"]}
    assert cited == {c["n"] for c in got["citations"]}
    assert "[1]" in got["answer"]

    follow = server.client.predict(
        "and when did they meet?", [{"role": "user", "content": got["question"]},
                                    {"role": "assistant", "content": got["answer"]}],
        api_name="/ask")
    assert follow["standalone_question"] != follow["question"]  # carried the subject
    assert "Azerbaijan" in follow["standalone_question"]


def _exported(turns: list[dict[str, object]]) -> str:
    """The export the button makes of these turns (written when clicked)."""
    return Path(chat.export_file([Turn.model_validate(t) for t in turns])).read_text(
        encoding="utf-8")


def test_chat_streams_then_renders_footnotes_and_exports(server: SimpleNamespace) -> None:
    job = server.client.submit("When did Pezeshkian meet Aliyev?", [], [], [], "", "",
                               "auto", api_name="/chat")
    job.result(timeout=120)
    updates = job.outputs()
    assert len(updates) >= 2  # the pending message, then the answer
    first = updates[0][0][-1]["content"][0]["text"]
    assert "rag-pending" in first
    messages = updates[-1][0]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    html = messages[-1]["content"][0]["text"]
    assert 'class="rag-cite"' in html and "<mark>" in html and "rag-source" in html
    assert "Mode: <span class=\"rag-mode\">extractive" in html
    got = server.client.predict("When did Pezeshkian meet Aliyev?", api_name="/ask")
    turns = [{"question": "When did Pezeshkian meet Aliyev?", "result": got}]
    md = _exported(turns)
    assert "## 1. When did Pezeshkian meet Aliyev?" in md
    assert SEED_TITLE in md and "iran-azerbaijan-baku-meeting.txt" in md and "> " in md

    # a follow-up in the same session: the conversation and the export grow
    job = server.client.submit("and why did they meet?", messages, [], [], "", "", "auto",
                               api_name="/chat")
    messages = job.result(timeout=120)[0]
    assert len(messages) == 4
    turns.append({"question": "and why did they meet?", "result": got})
    assert "## 2. and why did they meet?" in _exported(turns)
    cleared = server.client.predict(api_name="/new_chat")  # the chatbot (buttons aren't sent)
    assert cleared == [] or cleared[0] == []


def test_filters_restrict_the_answer(server: SimpleNamespace) -> None:
    seed_id = server.app.store.list_articles()[-1].id
    kept = server.client.predict("Why does Iran oppose the Zangezur corridor?", None,
                                 [seed_id], None, "2025-01-01", "2025-12-31", api_name="/ask")
    assert kept["citations"] and all(c["article_id"] == seed_id for c in kept["citations"])
    for kw in ({"outlets": ["No Such Outlet"]}, {"date_from": "2026-01-01"}):
        got = server.client.predict(question="Why does Iran oppose the Zangezur corridor?",
                                    api_name="/ask", **kw)
        assert got["refused"] and not got["citations"]
        assert "no passage matches the filters" in got["notice"]
    job = server.client.submit("Why does Iran oppose the Zangezur corridor?", [], [], [],
                               "2025-05-01", "2025-01-01", "auto", api_name="/chat")
    assert "the date range is empty" in job.result(timeout=60)[0][-1]["content"][0]["text"]


def test_add_text_ask_about_it_then_remove(server: SimpleNamespace) -> None:
    report = server.client.predict(XSS_TEXT, "", "Harbour Gazette", api_name="/add_text")
    assert report["counts"]["added"] == 1, report
    added = report["results"][0]
    assert added["title"] == XSS_TITLE and added["source"] == "pasted text"
    again = server.client.predict(XSS_TEXT, "", "Harbour Gazette", api_name="/add_text")
    assert again["counts"]["unchanged"] == 1
    rows = server.client.predict("harbour", api_name="/library")
    assert [r["title"] for r in rows] == [XSS_TITLE]
    assert rows[0]["outlet"] == "Harbour Gazette" and rows[0]["chunks"] >= 1

    got = server.client.predict("How much will the breakwater cost?", None, None,
                                ["Harbour Gazette"], api_name="/ask")
    assert got["citations"] and got["citations"][0]["title"] == XSS_TITLE
    html = render.answer_html(Answer.model_validate(got), "t", server.app.article_text)
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
    md = server.client.predict([{"question": "cost?", "result": got}], api_name="/export")
    assert "## 1. cost?" in md and "&lt;script&gt;" in md

    article_id = added["article_id"]
    saved = server.app.store.get_article(article_id).paths[0]
    assert Path(saved).parent.parent == server.data / "uploads"
    assert Path(saved).name == "pasted.txt"
    assert "Removed" in server.client.predict(article_id, api_name="/remove")
    assert server.client.predict("harbour", api_name="/library") == []
    assert not Path(saved).exists() and not Path(saved).parent.exists()
    assert "No article" in server.client.predict(article_id, api_name="/remove")


def test_add_by_url_and_upload_report_per_source_errors(server: SimpleNamespace,
                                                        tmp_path: Path) -> None:
    page = ("<html><head><title>Lighthouse restored</title>"
            '<meta property="article:published_time" content="2024-03-05"></head><body>'
            "<article><h1>Lighthouse restored</h1><p>The old lighthouse on the northern cape "
            "was restored by volunteers over three summers.</p><p>It will shine again from "
            "May, the preservation society said on Tuesday.</p></article></body></html>")
    (tmp_path / "lighthouse.html").write_text(page)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path), **k)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        ok = f"http://127.0.0.1:{httpd.server_address[1]}/lighthouse.html"
        missing = f"http://127.0.0.1:{httpd.server_address[1]}/nope.html"
        closed = f"http://127.0.0.1:{free_port()}/story"
        report = server.client.predict([ok, missing, closed], api_name="/add_urls")
    finally:
        httpd.shutdown()
    by_source = {r["source"]: r for r in report["results"]}
    assert by_source[ok]["status"] == "added" and by_source[ok]["title"] == "Lighthouse restored"
    assert by_source[missing]["reason"].startswith("HTTP 404")
    assert by_source[closed]["reason"] == UNREACHABLE
    assert "1 added, 0 updated, 0 unchanged, 2 failed" in report["summary"]

    # uploads: the same per-source reasons as `python -m ingest`, named as uploaded
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    odd = tmp_path / "notes.docx"
    odd.write_bytes(b"PK\x03\x04 not really")
    good = tmp_path / "tide.md"
    good.write_text("# Record tide\n\nThe highest tide in fifty years flooded the harbour "
                    "road on Sunday, the coastguard said.\n")
    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        '{"title": "Ferry strike ends", "source": "Coast News", "published": "2024-06-02", '
        '"text": "The ferry crews ended their strike after a pay deal on Sunday night."}\n'
        "{not json\n"
        '{"title": "Bridge tolls cut", "source": "Coast News", "published": "2024-06-03", '
        '"text": "Tolls on the coastal bridge will be cut by half from July, the council said."}\n')
    log = server.client.predict([handle_file(str(p)) for p in (empty, odd, good, feed)], "",
                                api_name="/add_files")
    assert "failed     empty.txt: empty file" in log
    assert "failed     notes.docx: unsupported extension '.docx'" in log
    assert "failed     feed.jsonl:2: invalid JSON" in log
    assert "Record tide" in log and "Ferry strike ends" in log and "Bridge tolls cut" in log
    assert "3 added, 0 updated, 0 unchanged, 3 failed" in log
    kept = sorted(p.name for p in (server.data / "uploads").rglob("*") if p.is_file())
    assert kept == ["feed.jsonl", "tide.md"]  # failed uploads are not kept
    rows = server.client.predict("tide", api_name="/library")
    assert rows[0]["title"] == "Record tide" and rows[0]["source"].endswith("/tide.md")
    coast = server.client.predict("coast news", api_name="/library")
    assert sorted(r["title"] for r in coast) == ["Bridge tolls cut", "Ferry strike ends"]
    server.client.predict(coast[0]["id"], api_name="/remove")  # the other line stays...
    kept = sorted(p.name for p in (server.data / "uploads").rglob("*") if p.is_file())
    assert kept == ["feed.jsonl", "tide.md"]  # ...so does the file it comes from


def test_login_required_when_auth_is_set(server: SimpleNamespace) -> None:
    port = free_port()
    demo = web_server.start(NewsApp(server.settings, engine=server.app.engine), "127.0.0.1",
                            port, "reader:open-sesame:editor", block=False)
    url = f"http://127.0.0.1:{port}/"
    try:
        assert httpx.get(url + "config").status_code == 401
        with pytest.raises(ValueError):
            Client(url, verbose=False, auth=("reader", "wrong"))
        client = Client(url, verbose=False, auth=("reader", "open-sesame"))
        assert [r["title"] for r in client.predict(api_name="/library")]
    finally:
        demo.close()


def test_ask_on_an_empty_library_answers_what_the_page_says(tmp_path: Path) -> None:
    """/ask on an empty library: the answer itself says the library is empty and how to
    add articles, in the chat's own words (one text for both; it was an empty answer,
    the words only in `notice`, so a client printing the answer printed nothing)."""
    from rag.settings import Settings

    news = NewsApp(Settings(data_dir=tmp_path / "data", collection="emptyapi"))
    port = free_port()
    demo = web_server.start(news, "127.0.0.1", port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        got = client.predict("What did the dockers demand in 2024?", api_name="/ask")
    finally:
        demo.close()
    assert got["refused"] and not got["citations"]
    assert got["answer"].startswith("Your library is empty")
    assert "Library tab" in got["answer"] and "python -m ingest" in got["answer"]
    assert got["answer"] not in got["notice"]  # said once, as the answer
    *_, last = chat.chat(news, "What did the dockers demand?", [], [], [], [], None, None,
                         "auto")
    assert last[0][-1]["content"] == render.message_html(got["answer"], "empty")


def test_python_app_py_on_an_empty_library(tmp_path: Path) -> None:
    """`python app.py` with nothing but a data folder and port: the page serves, and a
    question is answered with how to add articles."""
    port = free_port()
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data"), "RAG_PORT": str(port)}
    env.pop("RAG_AUTH", None)
    log = tmp_path / "app.log"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() - started < 90, log.read_text()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        client = Client(url, verbose=False)
        got = client.predict("what happened?", api_name="/ask")
        assert got["refused"] and "Library tab" in got["answer"]
        assert "python -m ingest" in got["answer"]
        assert client.predict(api_name="/library") == []
        job = client.submit("what happened?", [], [], [], "", "", "auto", api_name="/chat")
        assert "Your library is empty" in job.result(timeout=60)[0][-1]["content"][0]["text"]
        assert "WARNING" not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_question_back_renders_each_story_as_a_link_that_asks_about_it() -> None:
    from rag.types import Choice

    evil = '<img src=x onerror="alert(1)">'
    asked = _result(answer="Which story do you mean? ...", citations=[], sentences=[],
                    clarify=[Choice(article_id="a1", title=f"Envoys {evil}",
                                    published="2024-07-01",
                                    question=f"why? (story: Envoys {evil})"),
                             Choice(article_id="a2", title="Fiat deal", question="why? (story: "
                                                                                  "Fiat deal)")])
    out = render.answer_html(asked, "t1")
    assert out.count('class="rag-choice"') == 2 and "Which story do you mean?" in out
    assert 'title="why? (story: Fiat deal)"' in out and "<img" not in out
    assert "Envoys &lt;img" in out and "(2024-07-01)" in out
    md = export.conversation_markdown([{"question": "why?", "result": asked.to_json()}])
    assert "Which story do you mean?" in md and "- Fiat deal" in md and "<img" not in md

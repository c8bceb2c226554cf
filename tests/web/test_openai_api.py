"""The OpenAI-compatible API, through the real `openai` client against the running app:
plain and streamed answers with their citations, follow-ups, refusals, questions
back, filters, bad models, bad tokens, and a client that leaves mid-stream.

The model behind `news-rag-llm` is a fake OpenAI-compatible endpoint on loopback
that copies the first sentence of passage [1] (so its answer is supported) and then,
for the disconnect test, writes words slowly until its client goes away.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest
from support.documents import two_souring_stories
from support.fakes import first_sentence_of_passage_1, sse
from support.servers import QuietHandler, QuietServer, free_port

from rag.cli import main as rag_main
from rag.settings import Settings
from rag.types import REFUSAL, Answer
from web import server as web_server
from web.limits import Limits
from web.openai import completions, params
from web.openai.lanes import Lanes
from web.openai.params import ApiError
from web.service import EMPTY_LIBRARY, NewsApp
from web.tokens import TokenStore, tokens_path

WHY = "Why did relations between Iran and Azerbaijan sour?"
SLOW_WORDS = 400  # the slow answer's filler: 20 s at 0.05 s a word, if nobody stops it


class FakeWriter:
    """`/v1/chat/completions`: streamed, the first sentence of passage [1] with [1],
    then (when the question asks for "slowly") filler words every 0.05 s; plain (the
    condense call), a rewrite of the question. `cut` is set when a client that was
    being written to went away; `words` counts the filler words sent."""

    def __init__(self) -> None:
        self.cut = threading.Event()
        self.words = 0
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.json_body()
                prompt = str(body["messages"][-1]["content"])
                if not body.get("stream"):
                    self.plain("Why did relations between Iran and Azerbaijan sour?")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    self.event(sse(first_sentence_of_passage_1(prompt) + " [1] "))
                    if "slowly" in prompt:
                        for _ in range(SLOW_WORDS):
                            time.sleep(0.05)
                            self.event(sse("and "))
                            fake.words += 1
                    last = {"id": "fake", "object": "chat.completion.chunk", "created": 0,
                            "model": "fake", "choices": [{"index": 0, "delta": {},
                                                          "finish_reason": "stop"}]}
                    self.event(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    fake.cut.set()

            def event(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def plain(self, text: str) -> None:
                payload = json.dumps({
                    "id": "fake", "object": "chat.completion", "created": 0, "model": "fake",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, name="fake-writer",
                         daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The app on the seed article and a club row (two stories of souring relations),
    its LLM the fake writer; no login."""
    data = tmp_path_factory.mktemp("openai_api")
    writer = FakeWriter()
    settings = Settings(data_dir=data, collection="openaiapi", llm_model="fake",
                        openai_base_url=writer.base_url, openai_api_key="x",
                        answer_mode="auto", llm_timeout=60)
    news = NewsApp(settings)
    two_souring_stories(news.store, settings, data)
    port = free_port()
    demo = web_server.start(news, "127.0.0.1", port, block=False)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        yield SimpleNamespace(
            app=news, base=base, writer=writer, settings=settings,
            client=openai.OpenAI(base_url=base, api_key="unused", max_retries=0),
            seed_id=next(a.id for a in news.articles() if "Pezeshkian" in a.title))
    finally:
        demo.close()
        writer.close()


def ask(api: SimpleNamespace, question: str, model: str = "news-rag-extractive",
        history: list[dict[str, str]] | None = None, **extra: Any) -> Any:  # noqa: ANN401
    return api.client.chat.completions.create(
        model=model, messages=[*(history or []), {"role": "user", "content": question}],
        extra_body=extra or None)


# -- through the openai client ----------------------------------------------------------


def test_models_are_listed_and_an_unknown_one_is_404(api: SimpleNamespace) -> None:
    assert [m.id for m in api.client.models.list()] == list(params.MODELS)
    assert api.client.models.retrieve("news-rag-llm").id == "news-rag-llm"
    with pytest.raises(openai.NotFoundError) as err:
        ask(api, WHY, model="gpt-4o")
    assert err.value.code == "model_not_found" and "news-rag-extractive" in err.value.message


def test_a_plain_answer_carries_its_sources_in_content_and_its_citations_beside(
        api: SimpleNamespace) -> None:
    got = ask(api, WHY)
    content = got.choices[0].message.content
    answer, trailer = content.split(params.TRAILER)
    assert "Israel" in answer and "[1]" in answer and got.choices[0].finish_reason == "stop"
    citations, rag = got.model_extra["citations"], got.model_extra["rag"]
    assert rag["answer"] == answer and not rag["refused"] and rag["mode"] == "extractive"
    article = api.app.store.get_article(api.seed_id).text
    assert citations and trailer.startswith("Sources:")
    for c in citations:
        assert article[c["start"]:c["end"]] == c["quote"]  # the exact passage
        assert f"[{c['n']}]" in answer
        assert f"[{c['n']}] {c['title']} · Seed Times · {c['published']}" in trailer
        assert c["quote"] in trailer and c["file_path"] == "iran-azerbaijan-baku-meeting.txt"
    assert got.usage.completion_tokens > 10 and got.model == "news-rag-extractive"


def test_a_follow_up_carries_the_subject_and_our_sources_are_not_read_as_history(
        api: SimpleNamespace) -> None:
    first = ask(api, WHY)
    history = [{"role": "user", "content": WHY},
               {"role": "assistant", "content": first.choices[0].message.content}]
    follow = ask(api, "and when did the presidents meet?", history=history)
    rag = follow.model_extra["rag"]
    assert "Azerbaijan" in rag["standalone_question"] and not rag["refused"]
    asked, turns = params.conversation(
        [*history, {"role": "user", "content": "and when?"}], api.app.limits)
    assert turns[1]["content"] == first.model_extra["rag"]["answer"]  # no "Sources:"


def test_what_the_articles_do_not_say_is_refused_without_sources(api: SimpleNamespace
                                                                 ) -> None:
    got = ask(api, "Who won the 2006 World Cup?")
    assert got.model_extra["rag"]["refused"] and not got.model_extra["citations"]
    assert got.choices[0].message.content.startswith(REFUSAL)
    assert "Sources:" not in got.choices[0].message.content


def test_a_question_without_a_subject_is_asked_back_and_a_choice_answers(
        api: SimpleNamespace) -> None:
    got = ask(api, "why did relations sour?")
    rag, content = got.model_extra["rag"], got.choices[0].message.content
    assert len(rag["clarify"]) == 2 and content.startswith("Which story do you mean?")
    seed = next(c for c in rag["clarify"] if c["article_id"] == api.seed_id)
    assert f"- {seed['question']}" in content  # the questions to ask, in plain text
    answered = ask(api, seed["question"])
    assert not answered.model_extra["rag"]["clarify"]
    assert {c["article_id"] for c in answered.model_extra["citations"]} == {api.seed_id}


def test_filters_narrow_the_search_and_bad_ones_are_one_line_400s(api: SimpleNamespace
                                                                   ) -> None:
    only_seed = ask(api, "why did relations sour?", article_ids=[api.seed_id])
    assert not only_seed.model_extra["rag"]["clarify"]
    assert {c["article_id"] for c in only_seed.model_extra["citations"]} == {api.seed_id}
    by_outlet = ask(api, "why did relations sour?", outlets=["seed times"])
    assert {c["outlet"] for c in by_outlet.model_extra["citations"]} == {"Seed Times"}
    later = ask(api, WHY, date_from="2030-01-01")
    assert later.model_extra["rag"]["refused"] and "no passage matches the filters" in \
        later.choices[0].message.content
    for extra, named in [({"date_from": "2025-13-01"}, "date_from"),
                         ({"date_from": "2025-05-01", "date_to": "2025-04-01"}, "empty"),
                         ({"article_ids": "abc"}, "list of strings"),
                         ({"article_ids": ["nope"]}, "no article 'nope'"),
                         ({"outlets": ["Daily Nowhere"]}, "Daily Nowhere"),
                         ({"date_filter": "yes"}, "true or false")]:
        with pytest.raises(openai.BadRequestError) as err:
            ask(api, WHY, **extra)
        assert named in err.value.message and "\n" not in err.value.message, extra


def test_the_webs_bounds_apply(api: SimpleNamespace) -> None:
    limit = api.settings.max_question_chars
    with pytest.raises(openai.BadRequestError, match="RAG_MAX_QUESTION_CHARS"):
        ask(api, "why " * limit)
    turns = [{"role": r, "content": "x"} for _ in range(api.settings.max_history_turns + 1)
             for r in ("user", "assistant")]
    with pytest.raises(openai.BadRequestError, match="RAG_MAX_HISTORY_TURNS"):
        ask(api, WHY, history=turns)
    with pytest.raises(openai.BadRequestError, match="only text content"):
        api.client.chat.completions.create(model="news-rag", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}])
    with pytest.raises(openai.BadRequestError, match="last message"):
        api.client.chat.completions.create(model="news-rag", messages=[
            {"role": "user", "content": WHY}, {"role": "assistant", "content": "Yes."}])


def test_a_stream_sends_checked_sentences_then_sources_then_citations(
        api: SimpleNamespace) -> None:
    """The model cites passage numbers; what the stream sends is the checked answer in
    its own numbering, then the sources, then a last chunk with the citations."""
    chunks = list(api.client.chat.completions.create(
        model="news-rag-llm", messages=[{"role": "user", "content": WHY}], stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
    rag, citations = final.model_extra["rag"], final.model_extra["citations"]
    assert rag["mode"] == "llm" and rag["model"] == "fake" and citations, rag["notice"]
    assert text == completions.content(Answer.model_validate({**rag, "citations": citations}))
    assert "[1]" in rag["answer"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert ask(api, WHY, model="news-rag").model_extra["rag"]["mode"] == "llm"  # the default


def test_the_raw_stream_ends_in_done(api: SimpleNamespace) -> None:
    with httpx.stream("POST", f"{api.base}/chat/completions", timeout=60, json={
            "model": "news-rag-extractive", "stream": True,
            "messages": [{"role": "user", "content": WHY}]}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    last = json.loads(events[-2].removeprefix("data: "))
    assert last["choices"][0]["finish_reason"] == "stop" and last["citations"]


def test_a_client_that_leaves_mid_stream_stops_the_models_generation(
        api: SimpleNamespace) -> None:
    api.writer.cut.clear()
    stream = api.client.chat.completions.create(
        model="news-rag-llm", stream=True,
        messages=[{"role": "user", "content": WHY + " Answer slowly."}])
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break  # the first checked sentence is here; the model is still writing
    stream.close()
    assert api.writer.cut.wait(10), "the model went on writing to nobody"
    assert api.writer.words < SLOW_WORDS / 2
    assert not ask(api, WHY).model_extra["rag"]["refused"]  # its lane is free again


def test_errors_for_routes_and_bodies_are_openai_json(api: SimpleNamespace) -> None:
    json_type = {"content-type": "application/json"}
    for method, path, body, status in [("GET", "/chat/completions", None, 405),
                                       ("GET", "/embeddings", None, 404),
                                       ("POST", "/chat/completions", b"{not json", 400),
                                       ("POST", "/chat/completions", b"[]", 400)]:
        response = httpx.request(method, api.base + path, content=body, timeout=30,
                                 headers=json_type)
        assert response.status_code == status, (path, response.text)
        assert response.json()["error"]["message"]
    assert httpx.get(f"{api.base}/chat/completions", timeout=30).headers["allow"] == "POST"
    allow = httpx.post(f"{api.base}/models", timeout=30).headers["allow"]
    assert set(allow.split(", ")) == {"GET", "HEAD"}


def test_a_body_that_is_not_sent_as_json_is_415_and_never_answered(api: SimpleNamespace
                                                                   ) -> None:
    """A browser sends a cross-site form or fetch as text/plain (or urlencoded, or with
    no type) without asking first; such a body is not read at all."""
    body = json.dumps({"model": "news-rag-extractive",
                       "messages": [{"role": "user", "content": WHY}]})
    for kind in ("text/plain", "application/x-www-form-urlencoded", None):
        response = httpx.post(f"{api.base}/chat/completions", content=body, timeout=30,
                              headers={"content-type": kind} if kind else {})
        assert response.status_code == 415, (kind, response.text)
        assert response.json()["error"]["code"] == "unsupported_media_type"
    answered = httpx.post(f"{api.base}/chat/completions", content=body, timeout=60,
                          headers={"content-type": "application/json; charset=utf-8"})
    assert answered.status_code == 200


def test_a_deeply_nested_body_is_a_400_not_a_recursion_error(
        api: SimpleNamespace, caplog: pytest.LogCaptureFixture) -> None:
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"model": "news-rag", "x": ' + b"[" * 100_000):
        response = httpx.post(f"{api.base}/chat/completions", content=body, timeout=30,
                              headers={"content-type": "application/json"})
        assert response.status_code == 400 and "nested" in response.json()["error"]["message"]
    assert "RecursionError" not in caplog.text


# -- login: tokens ------------------------------------------------------------------------


def test_with_login_on_the_api_takes_tokens_per_user_and_a_revoked_one_fails(
        api: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = api.settings.model_copy(update={"api_tokens": tmp_path / "tokens.json"})
    monkeypatch.setenv("RAG_API_TOKENS", str(settings.api_tokens))
    monkeypatch.setenv("RAG_AUTH", "ann:pw:editor")
    from rag.settings import get_settings

    get_settings.cache_clear()
    try:
        assert rag_main(["token", "add", "ann"]) == 0
    finally:
        get_settings.cache_clear()
    token = capsys.readouterr().out.strip()
    assert token.startswith("nrag-") and token not in settings.api_tokens.read_text()
    [entry] = TokenStore(tokens_path(settings)).load()
    assert entry.name == "ann" and entry.role == "editor"

    port = free_port()
    demo = web_server.start(NewsApp(settings, engine=api.app.engine), "127.0.0.1", port,
                            users="ann:pw:editor", block=False)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        def client(key: str) -> openai.OpenAI:
            return openai.OpenAI(base_url=base, api_key=key, max_retries=0)

        got = client(token).chat.completions.create(
            model="news-rag-extractive", messages=[{"role": "user", "content": WHY}])
        assert got.model_extra["citations"]
        for key in ("nrag-not-a-token", "pw"):
            with pytest.raises(openai.AuthenticationError) as err:
                client(key).models.list()
            assert err.value.code == "invalid_api_key"
        missing = httpx.get(f"{base}/models", timeout=30)
        assert missing.status_code == 401 and "Bearer" in missing.json()["error"]["message"]
        TokenStore(tokens_path(settings)).revoke("ann")
        with pytest.raises(openai.AuthenticationError):  # at once, without a restart
            client(token).models.list()
    finally:
        demo.close()


def test_past_the_lanes_and_the_waiting_room_a_request_is_told_429(api: SimpleNamespace
                                                                    ) -> None:
    """One lane, one place in line: a slow answer runs, the next waits, the third is
    refused at once; when the first client leaves, the one in line is answered."""
    from web.openai.api import OpenAIApi
    from web.ui.layout import build

    settings = api.settings.model_copy(update={"answer_concurrency": 1, "queue_max": 1})
    news = NewsApp(settings, engine=api.app.engine)
    served = OpenAIApi(news)
    port = free_port()
    demo = build(news)
    web_server.launch(demo, "127.0.0.1", port, None, settings, api=served,
                      prevent_thread_lock=True, quiet=True)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-",
                           max_retries=0)
    slow = [{"role": "user", "content": WHY + " Answer slowly."}]
    try:
        first = client.chat.completions.create(model="news-rag-llm", messages=slow,
                                               stream=True)
        second: list[Any] = []
        waiting = threading.Thread(target=lambda: second.append(
            client.chat.completions.create(model="news-rag-extractive", messages=[
                {"role": "user", "content": WHY}])))
        waiting.start()
        deadline = time.monotonic() + 10
        while served.lanes.in_line < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(openai.RateLimitError) as err:
            client.chat.completions.create(model="news-rag-extractive", messages=slow)
        assert err.value.code == "rate_limit_exceeded"
        assert err.value.response.headers["retry-after"] == "1"
        first.close()
        waiting.join(30)
        assert second and second[0].model_extra["citations"]
    finally:
        demo.close()


# -- parts ------------------------------------------------------------------------------


def test_lanes_let_some_wait_and_refuse_the_rest_with_429() -> None:
    async def scene() -> list[str]:
        lanes = Lanes(lanes=1, waiting=1)
        await lanes.enter()  # answering
        waiting = asyncio.ensure_future(lanes.enter())
        await asyncio.sleep(0)
        with pytest.raises(ApiError) as err:
            await lanes.enter()
        assert err.value.status == 429 and err.value.headers["retry-after"] == "1"
        lanes.leave()
        await asyncio.wait_for(waiting, 1)  # the one in line goes next
        return [err.value.code or ""]

    assert asyncio.run(scene()) == ["rate_limit_exceeded"]


def test_an_empty_library_answers_what_the_page_says(tmp_path: Path) -> None:
    from rag.streams import Streamed
    from web.openai.lanes import answering

    news = NewsApp(Settings(data_dir=tmp_path, collection="emptyapi"))
    asked = params.parse({"model": "news-rag", "messages": [
        {"role": "user", "content": WHY}]}, Limits(news.settings))
    answer = Streamed(answering(news, asked)).result
    assert answer.refused and completions.content(answer) == EMPTY_LIBRARY


def test_a_request_body_is_read_as_openai_sends_it() -> None:
    limits = Limits(Settings())
    asked = params.parse({
        "model": "news-rag-llm", "temperature": 0.2, "stream": True, "user": "x",
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": [{"type": "text", "text": "why did"},
                                                  {"type": "text", "text": "it sour?"}]}]},
        limits)
    assert asked.question == "why did it sour?" and asked.history == [] and asked.stream
    assert asked.mode == "llm"
    with pytest.raises(ApiError, match="n must be 1"):
        params.parse({"model": "news-rag", "n": 2, "messages": [
            {"role": "user", "content": "x"}]}, limits)


def test_the_token_file_keeps_hashes_only_and_says_what_is_wrong(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from web.tokens import TokenError

    store = TokenStore(tmp_path / "tokens.json")
    entry, secret = store.add("svc-bot", "reader")
    other, _ = store.add("ann", "editor")
    assert store.find(secret) == entry and store.find(secret + "x") is None
    assert store.find(secret.removeprefix("nrag-")) is None
    assert secret not in store.path.read_text() and store.path.stat().st_mode & 0o077 == 0
    assert [t.id for t in store.revoke(entry.id)] == [entry.id]
    assert store.find(secret) is None and store.load() == [other]
    with pytest.raises(TokenError, match="no token has the id or user name 'bob'"):
        store.revoke("bob")
    with pytest.raises(TokenError, match="not a user name"):
        store.add("a:b", "reader")
    store.path.write_text("{broken", encoding="utf-8")
    with pytest.raises(TokenError, match="unreadable"):
        store.load()
    assert rag_main(["token", "--data-dir", str(tmp_path / "d"), "revoke", "x"]) == 1
    assert "error: no token has the id" in capsys.readouterr().err


# -- every parameter honoured, refused or knowingly ignored -----------------------------


def raw(api: SimpleNamespace, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{api.base}/chat/completions", json=body, timeout=60)


def streamed(api: SimpleNamespace, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", f"{api.base}/chat/completions", timeout=60,
                      json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        lines = [line.removeprefix("data: ") for line in response.iter_lines()
                 if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def finish_of(chunks: list[dict[str, Any]]) -> str | None:
    return next(c["choices"][0]["finish_reason"] for c in chunks
                if c["choices"] and c["choices"][0]["finish_reason"])


def test_max_tokens_cuts_the_content_with_finish_reason_length(api: SimpleNamespace) -> None:
    """The probe's case: a limit of 5 had 266 tokens back and "stop"."""
    whole = ask(api, WHY).choices[0].message.content
    for limit in ({"max_tokens": 5}, {"max_completion_tokens": 5},
                  {"max_tokens": 50, "max_completion_tokens": 5}):
        got = raw(api, {"model": "news-rag-extractive", **limit,
                        "messages": [{"role": "user", "content": WHY}]}).json()
        text = got["choices"][0]["message"]["content"]
        assert got["choices"][0]["finish_reason"] == "length" and whole.startswith(text)
        assert got["usage"]["completion_tokens"] == 5 and got["citations"]
        chunks = streamed(api, {"model": "news-rag-extractive", **limit,
                                "messages": [{"role": "user", "content": WHY}],
                                "stream_options": {"include_usage": True}})
        assert text_of(chunks) == text and finish_of(chunks) == "length"
        assert chunks[-1]["usage"]["completion_tokens"] == 5
    roomy = raw(api, {"model": "news-rag-extractive", "max_tokens": 4000,
                      "messages": [{"role": "user", "content": WHY}]}).json()
    assert roomy["choices"][0]["finish_reason"] == "stop"
    assert roomy["choices"][0]["message"]["content"] == whole


def test_stop_sequences_end_the_content_before_them_streamed_or_not(
        api: SimpleNamespace) -> None:
    whole = ask(api, WHY).choices[0].message.content
    for stop in ("Sources:", ["[2]", "\n\n---\n"], ["[1]"]):
        body = {"model": "news-rag-llm", "stop": stop,
                "messages": [{"role": "user", "content": WHY}]}
        got = raw(api, body).json()
        text = got["choices"][0]["message"]["content"]
        assert got["choices"][0]["finish_reason"] == "stop"
        for s in [stop] if isinstance(stop, str) else stop:
            assert s not in text
        chunks = streamed(api, body)
        assert text_of(chunks) == text and finish_of(chunks) == "stop"
    cut = raw(api, {"model": "news-rag-extractive", "stop": ["Sources:"],
                    "messages": [{"role": "user", "content": WHY}]}).json()
    assert whole.startswith(cut["choices"][0]["message"]["content"])
    assert "Sources:" in whole and cut["choices"][0]["message"]["content"] != whole


@pytest.mark.parametrize(("extra", "param"), [
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
     "response_format"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"},
     "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
    ({"functions": [{"name": "f"}], "function_call": {"name": "f"}}, "function_call"),
    ({"temperature": 5}, "temperature"), ({"temperature": -0.1}, "temperature"),
    ({"top_p": 1.5}, "top_p"), ({"presence_penalty": 3}, "presence_penalty"),
    ({"frequency_penalty": "high"}, "frequency_penalty"), ({"n": 2}, "n"),
    ({"seed": 1.5}, "seed"), ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"), ({"audio": {"voice": "alloy"}}, "audio"),
    ({"modalities": ["text", "audio"]}, "modalities"), ({"web_search_options": {}},
                                                        "web_search_options"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"stop": [""]}, "stop"),
    ({"max_tokens": 0}, "max_tokens"), ({"max_completion_tokens": "5"}, "max_completion_tokens"),
    ({"model": None}, "model"),
])
def test_what_cannot_be_honoured_is_a_400_naming_the_parameter(
        api: SimpleNamespace, extra: dict[str, Any], param: str) -> None:
    body = {"model": "news-rag-extractive", "messages": [{"role": "user", "content": WHY}],
            **extra}
    body = {k: v for k, v in body.items() if v is not None}  # {"model": None}: no model
    response = raw(api, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    assert "\n" not in error["message"]


def test_what_is_safely_ignored_is_answered_as_usual(api: SimpleNamespace) -> None:
    got = raw(api, {
        "model": "news-rag-extractive", "messages": [{"role": "user", "content": WHY}],
        "temperature": 0.2, "top_p": 1, "presence_penalty": 0.5, "frequency_penalty": -1,
        "seed": 7, "user": "u-1", "safety_identifier": "s", "metadata": {"a": "b"},
        "store": False, "logit_bias": {}, "logprobs": False, "top_logprobs": 0,
        "parallel_tool_calls": False, "tool_choice": "auto",
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "response_format": {"type": "text"}, "modalities": ["text"], "n": 1,
        "reasoning_effort": "low", "verbosity": "low", "service_tier": "auto",
        "prompt_cache_key": "k", "prediction": {"type": "content", "content": "x"},
        "stream_options": {"include_obfuscation": False}, "some_vendor_option": 1})
    assert got.status_code == 200, got.text
    assert got.json()["citations"] and got.json()["choices"][0]["finish_reason"] == "stop"
    assert set(params.PARAMETERS) >= {
        "messages", "model", "stream", *openai.types.chat.completion_create_params
        .CompletionCreateParamsBase.__annotations__}


def test_a_message_with_an_unknown_role_is_told_which_role_is_wrong(api: SimpleNamespace
                                                                     ) -> None:
    response = raw(api, {"model": "news-rag", "messages": [{"role": "robot", "content": WHY}]})
    message = response.json()["error"]["message"]
    assert response.status_code == 400 and "'robot' is not one of" in message
    missing = raw(api, {"model": "news-rag", "messages": [{"content": WHY}]})
    assert "needs a role" in missing.json()["error"]["message"]


# -- Open WebUI ------------------------------------------------------------------------


def test_open_webuis_task_prompts_get_the_json_they_ask_for(api: SimpleNamespace) -> None:
    """Its title, tags and follow-up prompts (real templates, filled from a real answer
    of ours) were 400s; now each gets its JSON, drawn from the conversation and the
    stories cited, without waiting for an answer lane."""
    from support.openwebui_prompts import task_body

    answer = ask(api, WHY, model="news-rag-extractive")
    chat = [{"role": "user", "content": WHY},
            {"role": "assistant", "content": answer.choices[0].message.content}]
    title = next(c["title"] for c in answer.model_extra["citations"])
    replies = {}
    for name in ("title", "tags", "follow_up", "query"):
        body = task_body(name, chat)
        assert len(body["messages"][0]["content"]) > api.settings.max_question_chars
        got = raw(api, body)
        assert got.status_code == 200, (name, got.text)
        data = got.json()
        assert data["choices"][0]["finish_reason"] == "stop" and "citations" not in data
        replies[name] = json.loads(data["choices"][0]["message"]["content"])
    assert replies["title"] == {"title": "Relations between Iran and Azerbaijan sour"}
    assert {"News", "Iran", "Azerbaijan"} <= set(replies["tags"]["tags"])
    assert f"What else is reported in “{title}”?" in replies["follow_up"]["follow_ups"]
    assert replies["query"] == {"queries": [WHY]}
    chunks = streamed(api, task_body("title", chat))
    assert json.loads(text_of(chunks)) == replies["title"]


def test_open_webuis_follow_ups_after_a_question_back_are_the_stories_offered(
        api: SimpleNamespace) -> None:
    from support.openwebui_prompts import task_body

    back = ask(api, "why did relations sour?")
    offered = [c["question"] for c in back.model_extra["rag"]["clarify"]]
    chat = [{"role": "user", "content": "why did relations sour?"},
            {"role": "assistant", "content": back.choices[0].message.content}]
    got = raw(api, task_body("follow_up", chat)).json()
    ups = json.loads(got["choices"][0]["message"]["content"])["follow_ups"]
    assert ups[:len(offered)] == offered
    chosen = ask(api, ups[0])  # each one is a question the library answers
    assert chosen.model_extra["citations"] and not chosen.model_extra["rag"]["clarify"]


def test_a_stream_sends_each_citation_as_an_open_webui_source_event(
        api: SimpleNamespace) -> None:
    """Open WebUI's middleware emits a chunk's `event`; a `source` event becomes a
    citation chip, and `[n]` links to the n-th distinct `metadata.name`."""
    chunks = streamed(api, {"model": "news-rag-extractive",
                            "messages": [{"role": "user", "content": WHY}]})
    events = [c["event"] for c in chunks if "event" in c]
    citations = next(c["citations"] for c in chunks if c.get("citations"))
    assert [e["type"] for e in events] == ["source"] * len(citations)
    for event, citation in zip(events, citations, strict=True):
        data = event["data"]
        assert data["document"] == [citation["quote"]]
        assert data["metadata"][0]["n"] == citation["n"]
        assert citation["title"] in data["source"]["name"]
    names = [e["data"]["metadata"][0]["name"] for e in events]
    sources = [e["data"]["metadata"][0]["source"] for e in events]
    assert len(set(names)) == len(names) == len(set(sources))
    assert all(c["choices"][0]["delta"] == {} for c in chunks if "event" in c)


# -- CORS ------------------------------------------------------------------------------


def test_cors_answers_only_the_listed_origins_and_none_by_default(api: SimpleNamespace
                                                                  ) -> None:
    from starlette.testclient import TestClient

    from web.openai.api import OpenAIApi

    preflight = {"Origin": "https://chat.example.org", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    default = httpx.options(f"{api.base}/chat/completions", headers=preflight, timeout=30)
    assert "access-control-allow-origin" not in default.headers  # RAG_CORS_ORIGINS unset
    plain = httpx.get(f"{api.base}/models", headers={"Origin": "https://chat.example.org"},
                      timeout=30)
    assert "access-control-allow-origin" not in plain.headers

    settings = api.settings.model_copy(update={
        "cors_origins": "https://chat.example.org, http://localhost:3000"})
    client = TestClient(OpenAIApi(NewsApp(settings, engine=api.app.engine)).asgi)
    allowed = client.options("/v1/chat/completions", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://chat.example.org"
    assert "POST" in allowed.headers["access-control-allow-methods"]
    headers = allowed.headers["access-control-allow-headers"].lower()
    assert "authorization" in headers and "content-type" in headers
    other = client.options("/v1/chat/completions",
                           headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers and other.status_code == 400
    listed = client.get("/v1/models", headers={"Origin": "http://localhost:3000"})
    assert listed.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "access-control-allow-origin" not in client.get(
        "/v1/models", headers={"Origin": "https://evil.example"}).headers
    with pytest.raises(ValueError, match="not an origin"):
        Settings(cors_origins="chat.example.org/path")

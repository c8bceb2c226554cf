"""The MCP server (web/mcp.py), through the `mcp` SDK's own client: against the running
app over streamable HTTP at /mcp (ask, search, list, read; the spans they give are the
article's own text; bad input is a one-line tool error; with login on, /v1's tokens),
and over stdio as a desktop client starts it (`python -m rag mcp`).

Answers are extractive with the heuristic reader (conftest): no model is loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult
from support.documents import two_souring_stories
from support.servers import clean_env, free_port

from rag.settings import Settings
from rag.types import REFUSAL
from web import server as web_server
from web.service import NewsApp
from web.tokens import TokenStore

WHY = "Why did relations between Iran and Azerbaijan sour?"
TOOLS = {"ask", "search", "list", "read"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The app on the seed article (outlet Seed Times) and a club row, extractive; no
    login. Served at /mcp beside /v1."""
    data = tmp_path_factory.mktemp("mcp")
    settings = Settings(data_dir=data, collection="mcptest", answer_mode="extractive")
    news = NewsApp(settings)
    two_souring_stories(news.store, settings, data)
    port = free_port()
    demo = web_server.start(news, "127.0.0.1", port, block=False)
    try:
        yield SimpleNamespace(
            app=news, settings=settings, data=data, url=f"http://127.0.0.1:{port}/mcp",
            seed_id=next(a.id for a in news.articles() if "Pezeshkian" in a.title))
    finally:
        demo.close()


def session(url: str, token: str | None = None, mode: str = "auto") -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0))
    return Client(streamable_http_client(url, http_client=http), mode=mode)


def calls(url: str, *steps: tuple[str, dict[str, Any]], token: str | None = None,
          mode: str = "auto") -> list[CallToolResult]:
    """The tools called in order on one connection."""

    async def run() -> list[CallToolResult]:
        async with session(url, token, mode) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            return [await client.call_tool(name, args) for name, args in steps]

    return anyio.run(run)


def call(url: str, name: str, **args: Any) -> CallToolResult:  # noqa: ANN401
    return calls(url, (name, args))[0]


def text(result: CallToolResult) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


# -- over streamable HTTP, against the running app ----------------------------------------


def test_ask_gives_the_checked_answer_with_spans_that_read_gives_back(lib: SimpleNamespace
                                                                      ) -> None:
    got = call(lib.url, "ask", question=WHY)
    assert not got.is_error, text(got)
    data = got.structured_content
    assert not data["refused"] and "Israel" in data["answer"] and data["citations"]
    assert text(got).startswith(data["answer"]) and "Sources:" in text(got)
    article = lib.app.store.get_article(lib.seed_id).text
    steps = []
    for c in data["citations"]:
        assert c["article_id"] == lib.seed_id and c["outlet"] == "Seed Times"
        assert article[c["start"]:c["end"]] == c["quote"]  # the exact passage
        assert f"[{c['n']}]" in data["answer"] and c["quote"] in text(got)
        assert c["file_path"] == "iran-azerbaijan-baku-meeting.txt"  # a name, not a path
        steps.append(("read", {"article_id": c["article_id"], "start": c["start"],
                               "end": c["end"]}))
    for c, read in zip(data["citations"], calls(lib.url, *steps), strict=True):
        assert read.structured_content["text"] == c["quote"]


def test_ask_refuses_asks_back_and_takes_history_and_filters(lib: SimpleNamespace) -> None:
    refused, back, only_seed, follow = calls(
        lib.url, ("ask", {"question": "Who won the 2006 World Cup?"}),
        ("ask", {"question": "why did relations sour?"}),
        ("ask", {"question": "why did relations sour?", "article_ids": [lib.seed_id]}),
        ("ask", {"question": "and when did the presidents meet?",
                 "history": [{"role": "user", "content": WHY},
                             {"role": "assistant", "content": "Relations soured. [1]"}]}),
        mode="legacy")  # the initialize handshake, as desktop clients of 2025 speak it
    assert refused.structured_content["refused"] and text(refused).startswith(REFUSAL)
    assert not refused.structured_content["citations"] and "Sources:" not in text(refused)
    clarify = back.structured_content["clarify"]
    assert len(clarify) == 2 and all(f"- {c['question']}" in text(back) for c in clarify)
    assert not only_seed.structured_content["clarify"]
    assert {c["article_id"] for c in only_seed.structured_content["citations"]} == \
        {lib.seed_id}
    assert "Azerbaijan" in follow.structured_content["standalone_question"]


def test_search_gives_passages_at_their_offsets_and_takes_filters(lib: SimpleNamespace
                                                                  ) -> None:
    found, by_outlet, later = calls(
        lib.url, ("search", {"query": "relations soured", "limit": 4}),
        ("search", {"query": "relations soured", "outlets": ["seed times"]}),
        ("search", {"query": "relations soured", "date_from": "2030-01-01"}))
    passages = found.structured_content["passages"]
    assert 0 < len(passages) <= 4
    assert {p["article_id"] for p in passages} >= {lib.seed_id}  # both stories match
    for p in passages:
        article = lib.app.store.get_article(p["article_id"]).text
        assert article[p["start"]:p["end"]] == p["text"] and p["text"] in text(found)
    assert {p["outlet"] for p in by_outlet.structured_content["passages"]} == {"Seed Times"}
    assert later.structured_content["passages"] == []


def test_list_and_read_give_the_library_without_server_paths(lib: SimpleNamespace) -> None:
    everything, seed_only, clubs, whole, tail = calls(
        lib.url, ("list", {}), ("list", {"outlets": ["Seed Times"]}),
        ("list", {"query": "rovers"}), ("read", {"article_id": lib.seed_id}),
        ("read", {"article_id": lib.seed_id, "start": 100}))
    listed = everything.structured_content
    assert listed["total"] == 2 and {a["id"] for a in listed["articles"]} >= {lib.seed_id}
    assert str(lib.data) not in text(everything) + str(listed)  # source names only
    assert [a["id"] for a in seed_only.structured_content["articles"]] == [lib.seed_id]
    assert [a["title"] for a in clubs.structured_content["articles"]] == \
        ["Harbour Rovers and Castle United fall out over stadium"]
    article = lib.app.store.get_article(lib.seed_id)
    assert whole.structured_content["text"] == article.text
    assert not whole.structured_content["more"] and article.title in text(whole)
    assert tail.structured_content["text"] == article.text[100:]


def test_bad_input_is_a_one_line_tool_error(lib: SimpleNamespace) -> None:
    limit = lib.settings.max_question_chars
    cases = [("ask", {"question": "  "}, "empty"),
             ("ask", {"question": "why " * limit}, "RAG_MAX_QUESTION_CHARS"),
             ("ask", {"question": WHY, "date_from": "2025-13-01"}, "date_from"),
             ("ask", {"question": WHY, "date_from": "2025-05-01", "date_to": "2025-04-01"},
              "empty"),
             ("ask", {"question": WHY, "article_ids": ["nope"]}, "no article 'nope'"),
             ("ask", {"question": WHY, "mode": "gpt"}, "mode"),
             ("search", {"query": "x", "outlets": ["Daily Nowhere"]}, "Daily Nowhere"),
             ("search", {"query": "x", "limit": 500}, "limit"),
             ("search", {}, "query"),
             ("read", {"article_id": "nope"}, "no article 'nope'"),
             ("read", {"article_id": lib.seed_id, "start": 10, "end": 5}, "after end"),
             ("list", {"offset": -1}, "offset"),
             ("nosuch", {}, "nosuch")]
    for (name, args, named), got in zip(cases, calls(lib.url, *((n, a) for n, a, _ in cases)),
                                        strict=True):
        line = text(got)
        assert got.is_error and named in line and "\n" not in line, (name, args, line)
        assert "Traceback" not in line


def test_with_login_on_a_token_is_needed_and_a_wrong_one_is_refused(
        lib: SimpleNamespace, tmp_path: Path) -> None:
    settings = lib.settings.model_copy(update={"api_tokens": tmp_path / "tokens.json"})
    _, token = TokenStore(settings.api_tokens).add("rita", "reader")
    port = free_port()
    demo = web_server.start(NewsApp(settings, engine=lib.app.engine), "127.0.0.1", port,
                            users="ann:pw:editor", block=False)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        got = calls(url, ("ask", {"question": WHY}), token=token)[0]  # a reader may ask
        assert got.structured_content["citations"]
        for wrong, said in (("nrag-not-a-token", "not valid"), ("pw", "not valid"),
                            (None, "No API token")):
            with pytest.raises(Exception) as err:  # noqa: B017 - an MCPError in groups
                calls(url, ("list", {}), token=wrong)
            assert said in _messages(err.value), wrong
        reply = httpx2.post(url, json={}, timeout=30)
        assert reply.status_code == 401 and "Bearer" in reply.json()["error"]["message"]
        assert reply.headers["www-authenticate"].startswith("Bearer")
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "page", "version": "0"}}}
        accept = {"Authorization": f"Bearer {token}",
                  "Accept": "application/json, text/event-stream"}
        for header, status in (({"Host": "evil.example"}, 421),  # DNS rebinding
                               ({"Origin": "http://evil.example"}, 403), ({}, 200)):
            reply = httpx2.post(url, json=initialize, headers={**accept, **header}, timeout=30)
            assert reply.status_code == status, (header, reply.text)
        TokenStore(settings.api_tokens).revoke("rita")
        with pytest.raises(Exception):  # noqa: B017 - at once, without a restart
            calls(url, ("list", {}), token=token)
    finally:
        demo.close()


def _messages(exc: BaseException) -> str:
    """The exception's text and its causes' and group members'."""
    parts = [f"{type(exc).__name__}: {exc}"]
    for inner in [exc.__cause__, exc.__context__, *getattr(exc, "exceptions", [])]:
        if inner is not None:
            parts.append(_messages(inner))
    return " | ".join(parts)


# -- over stdio, as a desktop client starts it ---------------------------------------------


def test_stdio_serves_the_same_tools_to_a_desktop_client(lib: SimpleNamespace) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rag", "mcp", "--data-dir", str(lib.data), "--collection", "mcptest"],
        env=clean_env(), cwd=str(Path(__file__).resolve().parents[2]))

    async def run() -> tuple[CallToolResult, CallToolResult, CallToolResult]:
        async with Client(params, mode="legacy") as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            return (await client.call_tool("list", {}),
                    await client.call_tool("ask", {"question": WHY}),
                    await client.call_tool("read", {"article_id": "nope"}))

    listed, answered, bad = anyio.run(run)
    assert listed.structured_content["total"] == 2
    assert not answered.is_error, text(answered)
    assert answered.structured_content["citations"] and "Israel" in text(answered)
    assert bad.is_error and "no article 'nope'" in text(bad)

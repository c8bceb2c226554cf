"""The library as an MCP server (Model Context Protocol): tools for agents and desktop
assistants to `ask` (the checked answer with its citations), `search` passages, `list`
articles and `read` one, served over streamable HTTP at `/mcp` on the app's own server
and over stdio (`python -m rag mcp`).

Contract:
- Every result carries structured content (JSON) and the same as readable text. A
  passage or citation is a verifiable span: the article's id, title, outlet and date,
  and `start`/`end`, character offsets into the article's stored text (`read` with
  those offsets gives the quoted text back, exactly).
- `ask` is the chat's answer (`web.openai.lanes.answering`: checked sentence by sentence,
  source names in place of server paths); its structured content is `Answer.to_json()`
  (refusal, questions asked back, date filter, notes) and its text is what /v1 sends as
  `content` (`web.openai.completions.content`). It takes a lane of /v1's (`Lanes`: at most
  RAG_ANSWER_CONCURRENCY answers at once, RAG_QUEUE_MAX waiting, beyond that "busy").
- On HTTP the caller is /v1's: with login on (RAG_AUTH) an `Authorization: Bearer`
  token of `web.tokens`, checked by `OpenAIApi.caller` (401 otherwise); the four tools
  only read, so a reader's token is enough. On stdio there is no token: the local user.
- A bad argument or a failure is a tool error of one line (`is_error`), never a
  traceback; unexpected failures are logged with theirs.
- The server is given the `NewsApp` (its engine, store, limits) and /v1's `OpenAIApi`
  (tokens, lanes, error lines); it builds neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import INTERNAL_ERROR, INVALID_REQUEST, CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from rag.answer.retrieve import Filters
from rag.records import StoredArticle
from rag.streams import Streamed
from rag.types import Answer, Passage
from web.openai import completions
from web.openai.api import OpenAIApi
from web.openai.lanes import Run, answering
from web.openai.params import ApiError, Asked, without_trailer
from web.service import NewsApp, UnknownFilter

logger = logging.getLogger(__name__)

PATH = "/mcp"
MAX_BODY = 2 * 1024 * 1024  # as /v1's
SEARCH_MAX = 50  # passages a search returns at most
LIST_MAX = 500  # articles a list returns at most
READ_MAX = 50_000  # characters a read returns at most
TURN_ROLES = ("user", "assistant")  # history turns read; others (system) are not ours
LOOPBACK = ("127.0.0.1", "localhost", "::1")
INSTRUCTIONS = (
    "A library of news articles. `ask` answers a question from the articles only, every "
    "sentence checked against the passage it cites; the citations give each quoted span "
    "as character offsets into its article, which `read` returns verbatim. `search` finds "
    "passages, `list` the articles (ids, titles, outlets, dates). Filters take article ids, "
    "outlet names and YYYY-MM-DD dates."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

Ids = Annotated[list[str] | None, Field(description="only these article ids")]
Outlets = Annotated[list[str] | None, Field(description="only these outlets (any case)")]
Since = Annotated[str | None, Field(description="published on or after (YYYY-MM-DD)")]
Until = Annotated[str | None, Field(description="published on or before (YYYY-MM-DD)")]


class _Server(MCPServer):
    """MCPServer whose argument errors are one line ("limit: Input should be ...")
    rather than pydantic's multi-line report."""

    async def call_tool(self, name: str, arguments: dict[str, Any],
                        context: Any = None) -> Any:  # noqa: ANN401 - the SDK's types
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if not isinstance(cause, ValidationError):
                raise
            lines = [f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                     for e in cause.errors()[:3]]
            raise ToolError(f"Error executing tool {name}: " + "; ".join(lines)) from cause


class NewsMcp:
    """The MCP server over one app. `api`: /v1's, whose tokens, lanes and error lines
    are shared (given by `web.server.start`; a new one, e.g. for stdio, otherwise)."""

    def __init__(self, app: NewsApp, api: OpenAIApi | None = None) -> None:
        self.app = app
        self.api = api or OpenAIApi(app)
        self.server = _Server("news-rag", title="News RAG", instructions=INSTRUCTIONS,
                              log_level="WARNING")
        self._register()

    # -- serving -------------------------------------------------------------------

    def session_manager(self, host: str | None = None) -> StreamableHTTPSessionManager:
        """A new streamable-HTTP session manager (one per server run; its `run()` must
        be entered before requests: `McpRoutes` does it). Stateless: each request is
        authenticated on its own, and no session outlives it. Bound to loopback, it
        refuses other Host and Origin headers (DNS rebinding), as the SDK's own app does."""
        security = None
        if host in LOOPBACK:
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])
        return StreamableHTTPSessionManager(self.server._lowlevel_server, stateless=True,
                                            security_settings=security,
                                            max_request_body_size=MAX_BODY)

    async def run_stdio(self) -> None:
        """Serve one client over this process's stdin and stdout until it closes them."""
        await self.server.run_stdio_async()

    # -- the tools -------------------------------------------------------------------

    def _register(self) -> None:
        async def ask(
            question: Annotated[str, Field(description="the question, in plain words")],
            history: Annotated[list[dict[str, str]] | None, Field(
                description='earlier turns, oldest first: [{"role": "user"|"assistant", '
                            '"content": "..."}]; a follow-up is read with them')] = None,
            article_ids: Ids = None, outlets: Outlets = None,
            date_from: Since = None, date_to: Until = None,
            as_of: Annotated[str | None, Field(
                description="answer as if today were this day (YYYY-MM-DD): later articles "
                            "are left out, 'last week' is read from it")] = None,
            date_filter: Annotated[bool, Field(
                description="let dates in the question narrow the search")] = True,
            mode: Annotated[Literal["auto", "extractive", "llm"] | None, Field(
                description="who writes the answer: sentences quoted from the articles "
                            "(extractive), the LLM, or the configured default")] = None,
        ) -> CallToolResult:
            """Answer a question from the library's articles only, every sentence checked
            against the passage it cites. The text is the answer with [n] markers, then the
            numbered sources; the structured content has `answer`, `refused` (the articles
            don't say), `citations` (n, article_id, title, outlet, published, start, end,
            quote: the quoted span at those offsets of the article), `clarify` (the question
            names no story: ask again with one of these questions), `notice`, `date_filter`."""
            return await self._guarded("ask", self._ask(
                question, history, article_ids, outlets, date_from, date_to, as_of,
                date_filter, mode))

        async def search(
            query: Annotated[str, Field(description="what the passages are about")],
            article_ids: Ids = None, outlets: Outlets = None,
            date_from: Since = None, date_to: Until = None,
            limit: Annotated[int, Field(ge=1, le=SEARCH_MAX,
                                        description="passages to return")] = 8,
        ) -> CallToolResult:
            """Passages of the articles that best match the query (the answer's own
            retrieval), best first: each with its article (id, title, outlet, published),
            its text and its character offsets `start`/`end` in the article."""
            return await self._guarded("search", asyncio.to_thread(
                self._search, query, article_ids, outlets, date_from, date_to, limit))

        async def list_(
            query: Annotated[str, Field(
                description="only articles whose title, outlet, date, source or id "
                            "hold every one of these words")] = "",
            outlets: Outlets = None, date_from: Since = None, date_to: Until = None,
            limit: Annotated[int, Field(ge=1, le=LIST_MAX)] = 100,
            offset: Annotated[int, Field(ge=0)] = 0,
        ) -> CallToolResult:
            """The library's articles, newest first: id, title, outlet, published, url or
            source file name, passages (chunks) and length in characters."""
            return await self._guarded("list", asyncio.to_thread(
                self._list, query, outlets, date_from, date_to, limit, offset))

        async def read(
            article_id: Annotated[str, Field(description="the article's id (from list, "
                                                         "search or a citation)")],
            start: Annotated[int, Field(ge=0, description="first character")] = 0,
            end: Annotated[int | None, Field(
                ge=0, description=f"character after the last (at most {READ_MAX:,} are "
                                  "returned at once)")] = None,
        ) -> CallToolResult:
            """An article's stored text, whole or from `start` to `end` (a citation's
            offsets give its quote back exactly), with its title, outlet, date and source;
            `more` is true when the text goes on after `end`."""
            return await self._guarded("read", asyncio.to_thread(
                self._read, article_id, start, end))

        for fn, name, title in ((ask, "ask", "Ask the news library"),
                                (search, "search", "Search passages"),
                                (list_, "list", "List articles"),
                                (read, "read", "Read an article")):
            self.server.add_tool(fn, name=name, title=title, annotations=READ_ONLY,
                                 structured_output=False)

    async def _guarded(self, tool: str, work: Awaitable[CallToolResult]) -> CallToolResult:
        """The tool's result, or its failure as one line (`NewsApp.error_line`: our own
        reasons as they are, anything else only that it happened, logged in full)."""
        try:
            return await work
        except ToolError:
            raise
        except ApiError as exc:
            raise ToolError(exc.message) from None
        except Exception as exc:
            raise ToolError(self.app.error_line(exc, f"MCP {tool}")) from None

    # -- ask ------------------------------------------------------------------------

    async def _ask(self, question: str, history: list[dict[str, str]] | None,
                   article_ids: list[str] | None, outlets: list[str] | None,
                   date_from: str | None, date_to: str | None, as_of: str | None,
                   date_filter: bool, mode: str | None) -> CallToolResult:
        limits = self.app.limits
        question = limits.question(question)
        if not question:
            raise ToolError("the question is empty")
        turns = [{"role": t.get("role", "user"),
                  "content": without_trailer(t.get("content", ""))}
                 for t in limits.history(history) if t.get("role", "user") in TURN_ROLES]
        filters = await asyncio.to_thread(self._filters, article_ids, outlets, date_from,
                                          date_to)
        asked = Asked(model="news-rag", mode=None if mode in (None, "auto") else mode,
                      question=question, history=turns, filters=filters,
                      dates_narrow=date_filter, as_of=limits.day(as_of, "as_of"))
        await self.api.lanes.enter()
        run = Run(Streamed(answering(self.app, asked)), asyncio.get_running_loop(),
                  self.api.lanes.leave)
        try:
            async for kind, value in run.events():
                if kind == "answer":
                    answer: Answer = value
                    return _result(completions.content(answer), answer.to_json())
                if kind == "error":
                    raise ToolError(self.api.failure(value, asked).message)
        finally:
            run.stop.set()  # a no-op once answered; else the client went away
        raise ToolError("the answer stopped")

    def _filters(self, article_ids: list[str] | None, outlets: list[str] | None,
                 date_from: str | None, date_to: str | None) -> Filters:
        """The filters, checked (`Limits.filters`); articles and outlets the library does
        not hold are named, not searched for; outlets match regardless of case."""
        limits = self.app.limits
        filters = limits.filters(article_ids, outlets, limits.day(date_from, "date_from"),
                                 limits.day(date_to, "date_to"))
        try:
            return self.app.held_filters(filters)
        except UnknownFilter as exc:
            raise ToolError(str(exc)) from None

    # -- search, list, read -----------------------------------------------------------

    def _search(self, query: str, article_ids: list[str] | None, outlets: list[str] | None,
                date_from: str | None, date_to: str | None, limit: int) -> CallToolResult:
        query = self.app.limits.question(query)
        if not query:
            raise ToolError("the query is empty")
        filters = self._filters(article_ids, outlets, date_from, date_to)
        self.app.warm_up()
        passages = self.app.engine.retriever().retrieve(query, top_k=limit, filters=filters)
        hits = [self._hit(p) for p in passages]
        lines = [f"{len(hits)} passage(s) for {query!r}" + (" (filtered)" if filters else "")]
        for n, h in enumerate(hits, 1):
            lines.append(f"\n[{n}] {_byline(h)} · article {h['article_id']} chars "
                         f"{h['start']}-{h['end']}\n{h['text']}")
        return _result("\n".join(lines), {"query": query, "passages": hits})

    def _hit(self, p: Passage) -> dict[str, Any]:
        return {"article_id": p.article_id, "title": p.title, "outlet": p.outlet,
                "published": p.published, "url": p.url,
                "source": self.app.uploads.source_name(p.path) or None,
                "chunk_id": p.chunk_id, "start": p.start, "end": p.end,
                "score": round(p.score, 4), "text": p.text}

    def _article(self, a: StoredArticle) -> dict[str, Any]:
        return {"id": a.id, "title": a.title, "outlet": a.outlet,
                "published": a.published.isoformat() if a.published else None,
                "authors": a.authors, "url": a.url,
                "source": self.app.uploads.source_name(a.paths[0]) if a.paths else None,
                "chunks": a.chunks, "story": a.story or a.id,
                "feed_summary": a.feed_summary}

    def _list(self, query: str, outlets: list[str] | None, date_from: str | None,
              date_to: str | None, limit: int, offset: int) -> CallToolResult:
        filters = self._filters(None, outlets, date_from, date_to)
        words = self.app.limits.field(query, "query").casefold().split()
        found = []
        for a in self.app.articles():
            meta = {"outlet": a.outlet,
                    "published_int": int(a.published.strftime("%Y%m%d")) if a.published
                    else None}
            if filters and not filters.match(meta):
                continue
            row = self._article(a)
            haystack = " ".join(str(v) for v in row.values() if v).casefold()
            if all(w in haystack for w in words):
                found.append(row)
        shown = found[offset:offset + limit]
        lines = [f"{len(found)} article(s)" + (f", {len(shown)} shown from {offset}"
                                               if len(shown) < len(found) else "")]
        lines += [f"- {a['id']} · {_byline(a)}" for a in shown]
        return _result("\n".join(lines), {"total": len(found), "offset": offset,
                                          "articles": shown})

    def _read(self, article_id: str, start: int, end: int | None) -> CallToolResult:
        self.app.limits.field(article_id, "article id")
        article = self.app.store.get_article(article_id.strip())
        if article is None:
            raise ToolError(f"the library has no article {article_id[:100]!r} (list gives "
                            "the ids)")
        chars = len(article.text)
        end = chars if end is None else min(end, chars)
        if start > end:
            raise ToolError(f"start ({start}) is after end ({end}); the article has {chars:,} "
                            "characters")
        end = min(end, start + READ_MAX)
        data = {**self._article(article), "chars": chars, "start": start, "end": end,
                "more": end < chars, "text": article.text[start:end]}
        head = f"{_byline(data)} · article {article.id} chars {start}-{end} of {chars}"
        more = f"\n\n(continues: read from start={end})" if end < chars else ""
        return _result(f"{head}\n\n{data['text']}{more}", data)


def _byline(item: dict[str, Any]) -> str:
    where = item.get("url") or item.get("source")
    parts = [item.get("title") or "untitled", item.get("outlet"),
             item.get("published") or "undated", where]
    return " · ".join(str(p) for p in parts if p)


def _result(text: str, data: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content=data)


class McpRoutes:
    """ASGI middleware: `/mcp` goes to the MCP server (after /v1's login check),
    everything else on. The SDK's session manager must run for requests to be served;
    gradio's app gives no lifespan hook of ours, so it is started on the server's own
    loop by the first request, and stopped when the server shuts down."""

    def __init__(self, app: Callable[..., Awaitable[None]], mcp: NewsMcp,
                 host: str | None = None) -> None:
        self.app, self.mcp = app, mcp
        self.manager = mcp.session_manager(host)
        self._ready: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._watching(receive), send)
            return
        if scope["type"] == "http" and _path(scope) in (PATH, PATH + "/"):
            await self._serve(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            caller = self.mcp.api.caller(Request(scope, receive))
        except ApiError as exc:
            headers = {**exc.headers, "www-authenticate": 'Bearer realm="news-rag"'} \
                if exc.status == 401 else exc.headers
            await _refusal(exc.status, exc.message, headers)(scope, receive, send)
            return
        if not await self._started():
            await _refusal(503, "The MCP server could not start (the details are in the "
                                "server's log).")(scope, receive, send)
            return
        logger.debug("MCP %s from %s", scope.get("method"), caller.name or "anyone")
        await self.manager.handle_request(scope, receive, send)

    async def _started(self) -> bool:
        if self._ready is None:
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._run(self._ready), name="mcp-sessions")
        await self._ready.wait()
        return self._failed is None

    async def _run(self, ready: asyncio.Event) -> None:
        try:
            async with self.manager.run():
                ready.set()
                await asyncio.Event().wait()  # until cancelled at shutdown
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed = exc
            logger.error("the MCP session manager stopped", exc_info=exc)
        finally:
            ready.set()

    def _watching(self, receive: Receive) -> Receive:
        async def watched() -> MutableMapping[str, Any]:
            message = await receive()
            if message.get("type") == "lifespan.shutdown" and self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            return message

        return watched


def serve_stdio(app: NewsApp) -> None:
    """`python -m rag mcp`: warm the engine up in the background and serve one client
    over stdin/stdout until it closes them (no login: the local user)."""
    import threading

    import anyio

    app.users = None
    threading.Thread(target=app.start_up, name="warm-up", daemon=True).start()
    anyio.run(NewsMcp(app).run_stdio)


def _refusal(status: int, message: str, headers: dict[str, str] | None = None
             ) -> JSONResponse:
    """A refused request as a JSON-RPC error: an MCP client shows its message (for a
    bare HTTP status it says only "Server returned an error response")."""
    code = INVALID_REQUEST if status < 500 else INTERNAL_ERROR
    return JSONResponse({"jsonrpc": "2.0", "id": None,
                         "error": {"code": code, "message": message}}, status, headers=headers)


def _path(scope: Scope) -> str:
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    return path[len(root):] if root and path.startswith(root) else path

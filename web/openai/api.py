"""The OpenAI-compatible API on the app's own server: `GET /v1/models`,
`POST /v1/chat/completions` (plain or `stream: true`), answered by the chat's engine.

It is a small Starlette app put in front of gradio's by `OpenAIRoutes` (an ASGI
middleware): gradio has no hook for routes of our own, and FastAPI's (gradio's own
framework) way would mean replacing gradio's launch. The request is checked by
`web.openai.params` and the answer shaped by `web.openai.completions`; here are the
login (Bearer tokens, `web.tokens`), the bounds (the page's: question and history
limits; answer lanes and a waiting room, 429 when full: `web.openai.lanes`), and the
answer sent whole or as server-sent events, stopped when the client goes away.

A body is read only as `application/json` (anything else is 415: a browser's
cross-site "simple request" cannot send that type without a preflight) and only up to
MAX_BODY bytes and MAX_DEPTH levels of nesting (checked before parsing: 400, never a
recursion error). Open WebUI's task prompts (`web.openai.openwebui`) are answered at once,
outside the answer lanes. Browsers on other origins may call the API only from the
origins in RAG_CORS_ORIGINS (none by default: no CORS headers at all), through
Starlette's CORSMiddleware.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from rag.answer.engine import rest_of
from rag.errors import UsageError
from rag.streams import Streamed
from rag.types import Answer
from web.auth import role_of
from web.openai import completions, params
from web.openai.cut import Cut
from web.openai.lanes import Lanes, Run, answering
from web.openai.params import ApiError, Asked
from web.service import UNEXPECTED, NewsApp, UnknownFilter
from web.tokens import TokenError, TokenStore, tokens_path

logger = logging.getLogger(__name__)
MAX_BODY = 2 * 1024 * 1024  # 20 history turns of 20,000 characters fit well within it
MAX_DEPTH = 64  # nesting levels of a body: a request with tools and schemas has ~10
CORS_MAX_AGE = 600  # seconds a browser may keep a preflight's answer

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class Caller:
    name: str | None
    role: str


class OpenAIApi:
    def __init__(self, app: NewsApp) -> None:
        self.app = app
        self.tokens = TokenStore(tokens_path(app.settings))
        self.lanes = Lanes(app.settings.answer_concurrency, app.settings.queue_max)
        origins = app.settings.cors_origin_list
        cors = [Middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"],
                           expose_headers=["Retry-After"], max_age=CORS_MAX_AGE)]
        self.asgi = Starlette(routes=[
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.model, methods=["GET"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
        ], middleware=cors if origins else [],
            exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                                Exception: self._unexpected})

    # -- who is asking -------------------------------------------------------------

    def caller(self, request: Request) -> Caller:
        """With login on (RAG_AUTH), the token's user; the role is the user's in
        RAG_AUTH, or the token's own for an API-only user. 401 otherwise."""
        if self.app.users is None:
            return Caller(None, role_of(None, None))
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "No API token: send 'Authorization: Bearer <token>' (python -m "
                           "rag token add NAME issues one).", code="invalid_api_key")
        try:
            entry = self.tokens.find(token.strip())
        except TokenError as exc:
            logger.error("%s", exc)
            raise ApiError(500, "The server cannot read its API tokens (the details are in "
                           "its log).", "server_error") from None
        if entry is None:
            client = request.client.host if request.client else "unknown"
            logger.info("API call with a token that is not valid, from %s", client)
            raise ApiError(401, "The API token is not valid (revoked or mistyped).",
                           code="invalid_api_key")
        user = self.app.users.get(entry.name)
        return Caller(entry.name, user.role if user else entry.role)

    # -- routes --------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        self.caller(request)
        return JSONResponse(params.model_list())

    async def model(self, request: Request) -> Response:
        self.caller(request)
        return JSONResponse(params.model_card(request.path_params["model"]))

    async def chat(self, request: Request) -> Response:
        caller = self.caller(request)
        asked = params.parse(await _json(request), self.app.limits)
        if asked.task is not None:
            logger.debug("API: Open WebUI's %s task from %s", asked.task.kind,
                         caller.name or "anyone")
            return _task_reply(asked)
        try:
            asked.filters = await asyncio.to_thread(self.app.held_filters, asked.filters)
        except UnknownFilter as exc:
            raise params.bad(str(exc), exc.field) from None
        await self.lanes.enter()
        run = Run(Streamed(answering(self.app, asked)), asyncio.get_running_loop(),
                  self.lanes.leave)
        logger.debug("API question from %s (%s): %r", caller.name or "anyone", asked.model,
                     asked.question[:200])
        if asked.stream:
            return EventStream(self, asked, run)
        return await self._whole(asked, run, request)

    async def _whole(self, asked: Asked, run: Run, request: Request) -> Response:
        gone = asyncio.create_task(_disconnected(request.receive))
        try:
            async for kind, value in _until(run.events(), gone):
                if kind == "answer":
                    return JSONResponse(completions.completion(asked, value))
                if kind == "error":
                    raise self.failure(value, asked)
            run.stop.set()  # the client went away: nothing to answer to
            return Response(status_code=499)
        finally:
            gone.cancel()

    def failure(self, exc: Exception, asked: Asked) -> ApiError:
        """What the client is told of a failed answer: our own one-line reasons as 400s,
        the store away as 503, anything else only that it happened (500)."""
        line = self.app.error_line(exc, f"answering {asked.question[:200]!r} (API)")
        if isinstance(exc, UsageError):
            return params.bad(line)
        if line == UNEXPECTED:
            return ApiError(500, line, "server_error")
        return ApiError(503, line, "server_error")

    async def _unexpected(self, request: Request, exc: Exception) -> Response:
        logger.error("API request failed", exc_info=exc)
        return _api_error(request, ApiError(500, UNEXPECTED, "server_error"))


class EventStream(Response):
    """Server-sent events in OpenAI's chunk format: the role, the answer as it is
    written, the notes and sources (cut at `stop` or `max_tokens` if asked), a chunk
    per citation carrying it as an Open WebUI `source` event, a last chunk with
    `finish_reason` and the citations, usage if asked, then `data: [DONE]`. A client
    that disconnects stops the answer."""

    media_type = "text/event-stream"

    def __init__(self, api: OpenAIApi, asked: Asked, run: Run) -> None:
        # not Response.__init__: it would declare a Content-Length of 0
        self.status_code, self.background = 200, None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"),
                            (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
        self.api, self.asked, self.run = api, asked, run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.create_task(_disconnected(receive))
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": self.raw_headers})
            if not await self._events(send, gone):
                self.run.stop.set()
        except OSError:  # the connection broke while writing
            self.run.stop.set()
        finally:
            gone.cancel()

    async def _events(self, send: Send, gone: asyncio.Task[None]) -> bool:
        asked = self.asked

        async def event(data: dict[str, Any] | str, comment: bool = False) -> None:
            text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            line = f": {text}\n\n" if comment else f"data: {text}\n\n"
            await send({"type": "http.response.body", "body": line.encode(),
                        "more_body": True})

        async def text(value: str) -> None:
            if value:
                await event(completions.chunk(asked, {"content": value}))

        await event(completions.chunk(asked, {"role": "assistant", "content": ""}))
        cut = Cut.of(asked)  # max_tokens and stop: what is sent of what comes
        fed = ""
        async for kind, value in _until(self.run.events(), gone):
            if kind == "wait":
                await event("still answering", comment=True)
            elif kind == "text":
                fed += value
                await text(cut.feed(value))
            elif kind == "error":
                error = self.api.failure(value, asked)
                await event(error.body())
                break
            else:
                answer: Answer = value
                await text(cut.feed(rest_of(completions.content(answer), fed)) + cut.end())
                for source in completions.source_events(answer):  # Open WebUI's chips
                    await event(completions.chunk(asked, {}, event=source))
                await event(completions.chunk(asked, {}, cut.finish or "stop",
                                              **completions.extras(answer)))
                if asked.include_usage:
                    await event(completions.usage_chunk(asked, cut.sent))
                await event("[DONE]")
                break
        else:
            return False  # the client went away first
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return True


class OpenAIRoutes:
    """ASGI middleware: `/v1/...` goes to the API, everything else to gradio."""

    def __init__(self, app: Callable[..., Awaitable[None]], api: OpenAIApi) -> None:
        self.app, self.api = app, api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
            if root and path.startswith(root):
                path = path[len(root):]
            if path == "/v1" or path.startswith("/v1/"):
                await self.api.asgi(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- helpers ---------------------------------------------------------------------------


async def _json(request: Request) -> Any:  # noqa: ANN401 - a client's JSON
    """The body as JSON: 415 unless it says it is JSON, 413 over MAX_BODY, 400 when it
    is not JSON or is nested deeper than MAX_DEPTH."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json" and not (kind.startswith("application/")
                                           and kind.endswith("+json")):
        raise ApiError(415, "The request body must be JSON, sent as 'Content-Type: "
                       f"application/json' (not {kind[:60] or 'none'!r}).",
                       code="unsupported_media_type")
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise ApiError(413, f"The request body is over {MAX_BODY:,} bytes.")
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > MAX_BODY:
            raise ApiError(413, f"The request body is over {MAX_BODY:,} bytes.")
    if nesting(body) > MAX_DEPTH:
        raise params.bad(f"the request body is nested more than {MAX_DEPTH} levels deep")
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise params.bad("the request body is not JSON") from None
    except RecursionError:  # not reached past the depth check; kept as the last guard
        raise params.bad(f"the request body is nested more than {MAX_DEPTH} levels "
                         "deep") from None


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def nesting(body: bytes) -> int:
    """How deep a JSON text's arrays and objects nest (brackets in strings not
    counted), in a few passes in C: no recursion, whatever the body."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _task_reply(asked: Asked) -> Response:
    """An Open WebUI task's answer, whole or as a stream of one content chunk."""
    assert asked.task is not None
    extra = {"rag": {"task": asked.task.kind}}
    if not asked.stream:
        return JSONResponse(completions.reply(asked, asked.task.reply, extra))
    cut = Cut.of(asked)
    text = cut.feed(asked.task.reply) + cut.end()
    chunks = [completions.chunk(asked, {"role": "assistant", "content": ""}),
              completions.chunk(asked, {"content": text}),
              completions.chunk(asked, {}, cut.finish or "stop", **extra)]
    if asked.include_usage:
        chunks.append(completions.usage_chunk(asked, text))

    async def events() -> AsyncIterator[str]:
        for data in chunks:
            yield f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})


async def _disconnected(receive: Receive) -> None:
    """Returns when the client disconnects (the body has been read by then)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _until(events: AsyncIterator[tuple[str, Any]], gone: asyncio.Task[None]
                 ) -> AsyncIterator[tuple[str, Any]]:
    """The run's events until it ends or the client disconnects, whichever is first."""
    while True:
        step = asyncio.ensure_future(anext(events))
        await asyncio.wait({step, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not step.done():
            step.cancel()
            return
        try:
            yield step.result()
        except StopAsyncIteration:
            return


def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"No such API route: {request.method} {request.url.path}."
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}."
    else:
        message = str(exc.detail)
    return JSONResponse(ApiError(exc.status_code, message).body(),
                        status_code=exc.status_code, headers=exc.headers)  # 405: Allow

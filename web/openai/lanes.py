"""Answers off the event loop, shared by /v1 (`web.openai.api`) and MCP (`web.mcp`).

`Lanes` lets at most RAG_ANSWER_CONCURRENCY answers run at once and RAG_QUEUE_MAX wait
(beyond that, a 429 `ApiError`); `Run` runs one answer (`answering`: the chat's,
checked sentence by sentence) on a worker thread and hands its text to the event loop
as it comes. A client that goes away stops its answer; the lane is freed when the
worker is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

from rag.answer.request import Ask
from rag.streams import Streamed
from rag.types import Answer
from web.openai.params import ApiError, Asked
from web.service import NewsApp

logger = logging.getLogger(__name__)
KEEP_ALIVE = 10.0  # seconds of silence in a stream before a comment line keeps it open


class Lanes:
    """At most `lanes` answers at once and `waiting` more in line; beyond, 429.

    The page's own queue is gradio's and cannot be shared; this one has the same
    sizes (RAG_ANSWER_CONCURRENCY, RAG_QUEUE_MAX)."""

    def __init__(self, lanes: int, waiting: int) -> None:
        self.lanes, self.waiting = lanes, waiting
        self._free: asyncio.Semaphore | None = None
        self._in_line = 0

    @property
    def in_line(self) -> int:
        return self._in_line

    async def enter(self) -> None:
        if self._free is None:
            self._free = asyncio.Semaphore(self.lanes)  # made on the server's own loop
        if self._free.locked() and self._in_line >= self.waiting:
            raise ApiError(429, f"The app is busy: {self._in_line} questions are waiting "
                           "(RAG_QUEUE_MAX); try again shortly.", "requests",
                           "rate_limit_exceeded", headers={"retry-after": "1"})
        self._in_line += 1
        try:
            await self._free.acquire()
        finally:
            self._in_line -= 1

    def leave(self) -> None:
        assert self._free is not None
        self._free.release()


class Run:
    """One answer on a worker thread, its text handed to the event loop as it comes.

    Setting `stop` (the client went away) closes the engine's stream at its next
    delta, which closes a model's generation underneath; the answer's lane is freed
    when the thread is done, not when the client left."""

    def __init__(self, stream: Streamed[str, Answer], loop: asyncio.AbstractEventLoop,
                 done: Callable[[], None]) -> None:
        self.stream, self.loop, self.done = stream, loop, done
        self.stop = threading.Event()
        self.items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.thread = threading.Thread(target=self._run, name="api-answer", daemon=True)
        self.thread.start()

    def _put(self, kind: str, value: Any) -> None:  # noqa: ANN401
        self._call(self.items.put_nowait, (kind, value))

    def _call(self, fn: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the server's loop closed mid-answer
            self.loop.call_soon_threadsafe(fn, *args)

    def _run(self) -> None:
        try:
            for delta in self.stream:
                if self.stop.is_set():
                    logger.info("the API client went away: the answer is stopped")
                    return
                if delta:
                    self._put("text", delta)
            self._put("answer", self.stream.result)
        except Exception as exc:
            self._put("error", exc)
        finally:
            self.stream.close()
            self._call(self.done)

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """("text", delta)… then ("answer", Answer) or ("error", exc); ("wait", None)
        after KEEP_ALIVE seconds of silence."""
        while True:
            try:
                kind, value = await asyncio.wait_for(self.items.get(), KEEP_ALIVE)
            except TimeoutError:
                yield "wait", None
                continue
            yield kind, value
            if kind != "text":
                return


def answering(app: NewsApp, asked: Asked) -> Generator[str, None, Answer]:
    """The chat's answer to the request, checked sentence by sentence (what a stream
    sends is never taken back); on an empty library, what the page says."""
    stream = app.answer(Ask(asked.question, history=asked.history, filters=asked.filters,
                            mode=asked.mode, dates_narrow=asked.dates_narrow, as_of=asked.as_of,
                            checked=True))
    try:
        yield from stream
    finally:
        stream.close()
    return stream.result

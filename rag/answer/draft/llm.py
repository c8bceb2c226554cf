"""The LLM answerer: OpenAI or any OpenAI-compatible endpoint, through llama-index.

The model sees numbered passages and must cite `[n]` on every claim, or say the
articles don't say. What it writes is checked afterwards (`rag.answer.verify.verify`);
nothing here trusts it.
"""

from __future__ import annotations

import logging
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any
from urllib.parse import urlsplit

from llama_index.core.llms import LLM, ChatMessage

from rag.answer.verify import split_cited_sentences
from rag.dates.parse import DateFilter
from rag.errors import ModelError
from rag.settings import Settings
from rag.types import AnswerMode, Draft, Passage

SYSTEM_PROMPT = """You answer questions about news articles using ONLY the numbered passages \
given to you. Rules:
- Every sentence of your answer must end with the number of the passage that supports it, in \
square brackets, like [1] or [2][3].
- Use only facts stated in the passages. Do not add anything from your own knowledge.
- If the passages do not answer the question, reply exactly: "The articles don't say."
- Be short: two to five sentences."""

CONDENSE_PROMPT = """Rewrite the last question as one standalone question that can be understood \
without the conversation. Keep names and subjects from earlier turns that it refers to. Reply with \
the question only.

Conversation:
{history}

Last question: {question}
Standalone question:"""


logger = logging.getLogger(__name__)
_REFUSAL_TEXT = re.compile(r"\b(articles?|passages?|sources?)\s+(do(es)?n[o'’]t|do not|does not)"
                           r" (say|mention|answer|contain|provide)", re.I)
CHARS_PER_TOKEN_CAP = 8  # a token is ~4 characters; twice that bounds a server ignoring max_tokens


class LLMError(ModelError):
    """The endpoint failed; the message is one line a user can act on."""


def llm_configured(settings: Settings) -> bool:
    return bool(settings.llm_model and (settings.openai_api_key or settings.openai_base_url))


def build_llm(settings: Settings, http_client: Any = None) -> LLM:
    """The llama-index client; `http_client` (an httpx.Client) gives a call its own
    connection, which closing it cuts, so the server stops generating."""
    if not settings.llm_model:
        raise LLMError("no LLM configured: set RAG_LLM_MODEL (and OPENAI_API_KEY and/or "
                       "OPENAI_BASE_URL)")
    common: dict[str, Any] = {
        "model": settings.llm_model,
        "api_key": settings.openai_api_key or "not-needed",
        "temperature": 0.1,
        "max_tokens": settings.llm_max_tokens,
        "timeout": settings.llm_timeout,
        # No retries: a retry would outlive the answer's deadline (a 429's Retry-After is
        # slept inside the call) and go on in the background after we gave up.
        "max_retries": 0,
    }
    if http_client is not None:
        common["http_client"] = http_client
    if settings.openai_base_url:
        from llama_index.llms.openai_like import OpenAILike

        return OpenAILike(api_base=settings.openai_base_url, is_chat_model=True,
                          context_window=settings.llm_context_window, **common)
    from llama_index.llms.openai import OpenAI

    return OpenAI(**common)


def describe_error(exc: Exception, settings: Settings) -> str:
    """One line for a failed call, without a stack trace."""
    import openai

    where = settings.openai_base_url or "api.openai.com"
    if isinstance(exc, openai.AuthenticationError):
        return f"the LLM endpoint {where} rejected the API key (401): check OPENAI_API_KEY"
    if isinstance(exc, openai.RateLimitError):
        return f"the LLM endpoint {where} is rate-limiting requests (429): try again shortly"
    if isinstance(exc, openai.APITimeoutError):
        return f"the LLM endpoint {where} timed out after {settings.llm_timeout:g} s"
    if _dropped(exc):
        return dropped_message(settings)
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach the LLM endpoint {where}: is the server running?"
    if isinstance(exc, openai.NotFoundError):
        return f"the LLM endpoint {where} has no model {settings.llm_model!r} (404)"
    if isinstance(exc, openai.APIStatusError):
        return f"the LLM endpoint {where} answered HTTP {exc.status_code}"
    return f"the LLM call failed ({type(exc).__name__}: {' '.join(str(exc).split())[:100]})"


def _dropped(exc: BaseException) -> bool:
    """Whether the server took the request and then the connection died under it
    (a crash mid-answer), as opposed to a server that could not be reached at all."""
    import httpx

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return False
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def listening(base_url: str, timeout: float = 0.5) -> bool | None:
    """Whether anything accepts connections at the endpoint's host and port now
    (None: no base URL to ask, e.g. api.openai.com, which is never probed)."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def dropped_message(settings: Settings) -> str:
    """One line for a connection that died mid-answer, saying whether the server is
    gone (it crashed or was stopped) or still there (it or a proxy cut the line)."""
    where = settings.openai_base_url or "api.openai.com"
    up = listening(settings.openai_base_url) if settings.openai_base_url else None
    if up is False:
        return (f"the LLM server at {where} died mid-answer: the connection dropped and "
                "nothing listens there any more (it crashed or was stopped; see its log)")
    return (f"the LLM endpoint {where} dropped the connection mid-answer (the server or a "
            "proxy between cut it)")


def _finished(chunk: Any) -> bool:  # noqa: ANN401 - a llama-index ChatResponse
    """Whether a streamed chunk carries the model's finish reason (stop, length, ...)."""
    raw = getattr(chunk, "raw", None)
    choices = getattr(raw, "choices", None) or (raw.get("choices") if isinstance(raw, dict)
                                                else None) or []
    for choice in choices:
        reason = getattr(choice, "finish_reason", None) or (
            choice.get("finish_reason") if isinstance(choice, dict) else None)
        if reason:
            return True
    return False


def format_passages(passages: list[Passage]) -> str:
    blocks = []
    for n, p in enumerate(passages, start=1):
        about = ", ".join(x for x in (p.title, p.published, p.outlet) if x)
        blocks.append(f"[{n}] ({about})\n{p.text}")
    return "\n\n".join(blocks)


def parse_answer(text: str) -> Draft:
    """A model's answer as a draft: its sentences with the passage numbers they cite,
    or a refusal when it says the articles don't say (or wrote nothing)."""
    claims = split_cited_sentences(text)
    if not claims or (_REFUSAL_TEXT.search(text) and len(claims) <= 2
                      and not any(c.passages for c in claims)):
        return Draft(refused=True)
    return Draft(claims=claims)


class LLMAnswerer:
    """An `Answerer` (rag.answer.draft.chain) that writes with the model.

    Calls have a wall-clock deadline (RAG_LLM_TIMEOUT for the whole call, not per
    read) and a length cap; a call that is abandoned (deadline, cap, or the user
    cancelled and the generator was closed) closes its connection."""

    mode = AnswerMode.LLM
    streams_text = True  # the model's text goes out as it is written
    must_be_supported = True  # nothing it writes is trusted until checked
    refusal_stands = True  # a capable model's "the articles don't say" is believed
    takes_window = False  # it reads the dates in the question itself

    def __init__(self, settings: Settings, llm: LLM | None = None) -> None:
        """`llm`: a client to call with (tests); without one, each call builds its own
        (`_client`), so nothing is built before the first call."""
        self.settings = settings
        self.llm = llm

    @property
    def model(self) -> str:
        return str(self.settings.llm_model)

    @property
    def max_chars(self) -> int:
        return self.settings.llm_max_tokens * CHARS_PER_TOKEN_CAP

    def messages(self, question: str, passages: list[Passage]) -> list[ChatMessage]:
        return [
            ChatMessage(role="system", content=SYSTEM_PROMPT),
            ChatMessage(role="user", content=f"Passages:\n\n{format_passages(passages)}\n\n"
                                             f"Question: {question}"),
        ]

    def _client(self) -> tuple[LLM, Callable[[], None]]:
        """An LLM for one call and how to cut its connection: the given client, or a
        client of our own on a connection of its own, which closing cuts."""
        if self.llm is not None:
            return self.llm, lambda: None
        import openai

        http = openai.DefaultHttpxClient(timeout=self.settings.llm_timeout)
        return build_llm(self.settings, http_client=http), http.close

    def stream(self, question: str, passages: list[Passage]) -> Iterator[str]:
        """Text deltas as the model writes them; raises LLMError on endpoint failure or
        when the deadline passes. Stops quietly at the length cap."""
        timeout = self.settings.llm_timeout
        deadline = time.monotonic() + timeout
        llm, cut = self._client()
        deltas: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()

        def produce() -> None:
            # A worker reads the stream so that the reader here can give up at the
            # deadline even while the worker waits for the next token.
            gen = None
            finished = False
            try:
                gen = llm.stream_chat(self.messages(question, passages))
                for chunk in gen:
                    if stop.is_set():
                        break
                    if chunk.delta:
                        deltas.put(("delta", chunk.delta))
                    finished = finished or _finished(chunk)
                # A stream that ends without a finish reason was cut (the connection
                # closed mid-answer), and its last sentence may be half a sentence.
                deltas.put(("end", None) if finished or stop.is_set() else ("cut", None))
            except Exception as exc:
                deltas.put(("error", exc))
            finally:
                if gen is not None:
                    gen.close()
                cut()

        worker = threading.Thread(target=produce, name="llm-stream", daemon=True)
        worker.start()
        written = 0
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LLMError(f"the LLM did not finish within {timeout:g} s "
                                   "(RAG_LLM_TIMEOUT)")
                try:
                    kind, value = deltas.get(timeout=remaining)
                except queue.Empty:
                    continue
                if kind == "end":
                    return
                if kind == "cut":
                    why = dropped_message(self.settings)
                    raise LLMError(f"the LLM's answer was cut off: {why}")
                if kind == "error":
                    raise LLMError(describe_error(value, self.settings)) from value
                if written + len(value) > self.max_chars:
                    logger.info("LLM answer cut at %d characters (RAG_LLM_MAX_TOKENS)", written)
                    yield value[: self.max_chars - written]
                    return
                written += len(value)
                yield value
        finally:
            stop.set()  # the worker stops at its next token...
            cut()  # ...or now, if it is waiting for one: its connection is closed under it

    def draft(self, question: str, passages: list[Passage],
              window: DateFilter | None = None) -> Generator[str, None, Draft]:
        parts: list[str] = []
        for delta in self.stream(question, passages):
            parts.append(delta)
            yield delta
        return parse_answer("".join(parts))

    def condense(self, question: str, history: list[dict[str, Any]]) -> str:
        lines = [f"{t.get('role', 'user')}: {t.get('content', '')}" for t in history[-6:]]
        prompt = CONDENSE_PROMPT.format(history="\n".join(lines), question=question)
        llm, cut = self._client()
        try:
            text = llm.complete(prompt).text.strip().strip('"').splitlines()
        except Exception as exc:
            raise LLMError(describe_error(exc, self.settings)) from exc
        finally:
            cut()
        return text[0].strip() if text and text[0].strip() else question

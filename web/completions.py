"""OpenAI's chat-completion shapes, in and out: what a request asks of the engine, and
the answer as a completion or as stream chunks (the HTTP side is `web.openai_api`).

A stock client shows only `choices[0].message.content`, so the content carries the
answer with its `[n]` markers and, after it, the notes and a plain-text list of the
numbered sources: a front-end that knows nothing of us still shows where each claim
came from. The full citation objects (`rag ask --json`'s, spans included) go in the
extra top-level `citations`, and the rest of the answer (refusal, choices asked back,
date filter, mode, notes) in `rag`: stock clients ignore fields they do not know.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

from rag.retrieval import Filters
from rag.types import Answer
from web.limits import FIELD_CHARS, Limits

MODELS = {  # model id -> answer mode (None: the configured default, RAG_ANSWER_MODE)
    "news-rag": None,
    "news-rag-extractive": "extractive",
    "news-rag-llm": "llm",
}
DEFAULT_MODEL = "news-rag"
TRAILER = "\n\n---\n"  # where the notes and sources begin; cut from assistant turns sent back
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
TEXT_PARTS = ("text", "input_text")


class ApiError(Exception):
    """A request refused, as OpenAI words it: status, one line, type and code."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status, message, type_, code, param)
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


def bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param)


@dataclass
class Asked:
    """One chat-completion request, checked: what the engine is asked."""

    model: str
    mode: str | None
    question: str
    history: list[dict[str, Any]]
    filters: Filters
    stream: bool = False
    include_usage: bool = False
    date_filter: bool = True
    as_of: date | None = None
    id: str = field(default_factory=lambda: "chatcmpl-" + secrets.token_hex(12))
    created: int = field(default_factory=lambda: int(time.time()))


def model_list() -> dict[str, Any]:
    return {"object": "list", "data": [model_card(m) for m in MODELS]}


def model_card(model: str) -> dict[str, Any]:
    if model not in MODELS:
        raise unknown_model(model)
    return {"id": model, "object": "model", "created": 0, "owned_by": "news-rag"}


def unknown_model(model: object) -> ApiError:
    return ApiError(404, f"The model {str(model)[:100]!r} does not exist; the models are "
                    + ", ".join(MODELS), code="model_not_found", param="model")


def parse(body: Any, limits: Limits) -> Asked:  # noqa: ANN401 - a client's JSON
    """A chat-completion body as the engine's question, history and filters; ApiError
    (400 or 404, one line) for what cannot be answered as asked."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object")
    model = body.get("model", DEFAULT_MODEL)
    if not isinstance(model, str) or model not in MODELS:
        raise unknown_model(model)
    n = body.get("n", 1)
    if n not in (None, 1):
        raise bad("n must be 1: one answer is written per question", "n")
    stream = _flag(body, "stream", False)
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad("stream_options must be an object", "stream_options")
    question, history = conversation(body.get("messages"), limits)
    try:
        filters = limits.filters(_strings(body, "article_ids"), _strings(body, "outlets"),
                                 _day(body, "date_from", limits), _day(body, "date_to", limits))
        as_of = limits.day(body.get("as_of"), "as_of")
    except ValueError as exc:
        raise bad(str(exc)) from None
    return Asked(model=model, mode=MODELS[model], question=question, history=history,
                 filters=filters, stream=stream,
                 include_usage=bool(options.get("include_usage")),
                 date_filter=_flag(body, "date_filter", True), as_of=as_of)


def conversation(messages: Any, limits: Limits  # noqa: ANN401
                 ) -> tuple[str, list[dict[str, Any]]]:
    """The last user message as the question, the user and assistant turns before it
    as history (our own notes and sources cut from the answers). System prompts are
    not ours to follow: the engine answers from the articles only."""
    if not isinstance(messages, list) or not messages:
        raise bad("messages must be a non-empty list of {role, content} objects", "messages")
    turns: list[dict[str, Any]] = []
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise bad(f"messages[{number}] needs a role ({', '.join(ROLES)})", "messages")
        turns.append({"role": message["role"], "content": _text(message, number)})
    if turns[-1]["role"] != "user":
        raise bad("the last message must be the user's question", "messages")
    try:
        question = limits.question(turns[-1]["content"])
        if not question:
            raise bad("the question (the last user message) is empty", "messages")
        history = limits.history([
            {"role": t["role"], "content": without_trailer(t["content"])}
            for t in turns[:-1] if t["role"] in ("user", "assistant")])
    except ValueError as exc:
        raise bad(str(exc), "messages") from None
    return question, history


def _text(message: dict[str, Any], number: int) -> str:
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise bad(f"messages[{number}].content must be text or a list of text parts",
                  "messages")
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in TEXT_PARTS or not isinstance(part.get("text"), str):
            raise bad(f"messages[{number}]: only text content is understood here (not "
                      f"{str(kind or type(part).__name__)[:40]})", "messages")
        texts.append(part["text"])
    return "\n".join(texts)


def without_trailer(text: str) -> str:
    """An answer sent back as history, without the notes and sources we appended."""
    return text.split(TRAILER, 1)[0]


def _strings(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad(f"{key} must be a list of strings", key)
    return value


def _day(body: dict[str, Any], key: str, limits: Limits) -> date | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > FIELD_CHARS):
        raise bad(f"{key} must be a date as YYYY-MM-DD", key)
    try:
        return limits.day(value, key)
    except ValueError as exc:
        raise bad(str(exc), key) from None


def _flag(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(f"{key} must be true or false", key)
    return value


# -- the answer, as OpenAI shapes it ---------------------------------------------------


def trailer(answer: Answer) -> str:
    """What follows the answer in `content`: its notes, the stories to choose from, and
    the numbered sources (title, outlet, date, URL or file name, the quoted span)."""
    lines: list[str] = []
    if answer.notice:
        lines.append(f"Note: {answer.notice}")
    if answer.date_filter is not None:
        f = answer.date_filter
        lines.append(f"Searched only passages about {f.text} (from “{f.phrase}”); send "
                     '"date_filter": false to search all dates.')
    if answer.clarify:
        lines.append("Ask again about one of them, for example:")
        lines.extend(f"- {c.question}" for c in answer.clarify)
    unsupported = [s.text for s in answer.sentences if not s.supported]
    if unsupported and not answer.refused:
        lines.append("Not supported by the cited passages: "
                     + " ".join(f"“{s}”" for s in unsupported))
    if answer.citations:
        lines.append("Sources:")
        for c in answer.citations:
            about = f", about {c.event_text}" if c.event_text else ""
            where = [c.title or "untitled", c.outlet, (c.published or "undated") + about,
                     c.url or c.path]
            lines.append(f"[{c.n}] " + " · ".join(w for w in where if w)
                         + f": “{' '.join(c.quote.split())}”")
    return TRAILER + "\n\n".join(lines) if lines else ""


def content(answer: Answer) -> str:
    return answer.answer + trailer(answer)


def extras(answer: Answer) -> dict[str, Any]:
    """The extra top-level fields: `citations` and `rag` (the answer's other parts)."""
    data = answer.to_json()
    citations = data.pop("citations")
    return {"citations": citations, "rag": data}


def usage(asked: Asked, text: str) -> dict[str, int]:
    prompt = _tokens(asked.question) + sum(_tokens(t["content"]) for t in asked.history)
    completion = _tokens(text)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


@cache
def _tokenizer() -> Any:  # noqa: ANN401
    from llama_index.core.utils import get_tokenizer  # tiktoken, bundled with llama-index

    return get_tokenizer()


def _tokens(text: str) -> int:
    return len(_tokenizer()(text)) if text else 0


def completion(asked: Asked, answer: Answer) -> dict[str, Any]:
    text = content(answer)
    return {"id": asked.id, "object": "chat.completion", "created": asked.created,
            "model": asked.model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": text,
                                     "refusal": None}}],
            "usage": usage(asked, text), **extras(answer)}


def chunk(asked: Asked, delta: dict[str, Any], finish: str | None = None,
          **extra: Any) -> dict[str, Any]:  # noqa: ANN401
    return {"id": asked.id, "object": "chat.completion.chunk", "created": asked.created,
            "model": asked.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                         "logprobs": None}], **extra}


def usage_chunk(asked: Asked, text: str) -> dict[str, Any]:
    return {"id": asked.id, "object": "chat.completion.chunk", "created": asked.created,
            "model": asked.model, "choices": [], "usage": usage(asked, text)}

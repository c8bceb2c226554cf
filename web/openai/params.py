"""A chat-completion request, checked: what it asks of the engine (`Asked`), or an
`ApiError` as OpenAI words it (400 or 404, one line).

Every request parameter is honoured, refused with a 400 or ignored for a stated
reason (`PARAMETERS`; the README's table says the same). What cannot be honoured (JSON
output, a required tool call, log probabilities, audio, web search, out-of-range
values, no `model`) is refused rather than silently answered in prose. An Open WebUI
task prompt is taken as its task (`web.openai.openwebui`), not as a question. The
answer's shapes are `web.openai.completions`'; `stop` and `max_tokens` are applied by
`web.openai.cut`.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from rag.answer.retrieve import Filters
from rag.errors import RagError
from web.limits import FIELD_CHARS, Limits
from web.openai import openwebui

logger = logging.getLogger(__name__)

MODELS = {  # model id -> answer mode (None: the configured default, RAG_ANSWER_MODE)
    "news-rag": None,
    "news-rag-extractive": "extractive",
    "news-rag-llm": "llm",
}
DEFAULT_MODEL = "news-rag"
# Where the notes and sources begin in an answer's content (`web.openai.completions`);
# cut from the assistant turns a client sends back.
TRAILER = "\n\n---\n"
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
TEXT_PARTS = ("text", "input_text")
MAX_STOPS = 4  # OpenAI's limit on stop sequences
STOP_CHARS = 200  # one stop sequence, far above any real one

# Every chat-completion parameter OpenAI defines (and ours), with what is done with it;
# the README's table says the same. An ignored one is checked where OpenAI checks its
# range, so a wrong value is still a 400.
PARAMETERS: dict[str, tuple[str, str]] = {
    "model": ("honoured", "required; chooses the answer mode"),
    "messages": ("honoured", "the last user message is the question, earlier turns the "
                 "history"),
    "stream": ("honoured", "server-sent events"),
    "stream_options": ("honoured", "include_usage; include_obfuscation is ignored (no "
                       "padding is sent)"),
    "max_tokens": ("honoured", "the content is cut at this many tokens (cl100k_base), "
                   "finish_reason 'length'"),
    "max_completion_tokens": ("honoured", "as max_tokens (the smaller wins if both)"),
    "stop": ("honoured", "up to 4 strings; the content ends before the first, "
             "finish_reason 'stop'"),
    "n": ("honoured", "1 only: one answer is written per question; other values are refused"),
    "response_format": ("refused", "json_object and json_schema are refused (answers are "
                        "prose with citations); text is what is always sent"),
    "tools": ("ignored", "no tool is ever called, which tool_choice 'auto' allows; a "
              "required or named tool call is refused"),
    "tool_choice": ("refused", "'required' or a named function is refused; 'auto' and "
                    "'none' are what happens anyway"),
    "functions": ("ignored", "the old form of tools, likewise"),
    "function_call": ("refused", "a named function is refused; 'auto' and 'none' are what "
                      "happens anyway"),
    "parallel_tool_calls": ("ignored", "no tool is ever called"),
    "logprobs": ("refused", "true is refused: the answer is checked sentences, not sampled "
                 "tokens with probabilities"),
    "top_logprobs": ("refused", "above 0 is refused, as logprobs"),
    "audio": ("refused", "answers are text only"),
    "modalities": ("refused", "anything but ['text'] is refused"),
    "web_search_options": ("refused", "answers come from the library only"),
    "logit_bias": ("refused", "a non-empty bias is refused: no token can be forbidden or "
                   "forced in a checked, quoted answer; an empty one is ignored"),
    "temperature": ("ignored", "0 to 2, else refused; sampling is the server's, and what "
                    "is sent is checked against the passages either way"),
    "top_p": ("ignored", "0 to 1, else refused; as temperature"),
    "presence_penalty": ("ignored", "-2 to 2, else refused; as temperature"),
    "frequency_penalty": ("ignored", "-2 to 2, else refused; as temperature"),
    "seed": ("ignored", "an integer, else refused; extractive answers are the same every "
             "time anyway, LLM answers are checked"),
    "user": ("ignored", "an end-user id for abuse monitoring; the log names the token's user"),
    "safety_identifier": ("ignored", "as user"),
    "metadata": ("ignored", "tags for stored completions; nothing is stored"),
    "store": ("ignored", "nothing is stored, so nothing can be listed later"),
    "prediction": ("ignored", "a latency hint for predicted output; it changes no answer"),
    "prompt_cache_key": ("ignored", "a caching hint; it changes no answer"),
    "prompt_cache_retention": ("ignored", "a caching hint; it changes no answer"),
    "prompt_cache_options": ("ignored", "a caching hint; it changes no answer"),
    "reasoning_effort": ("ignored", "there is no reasoning step to tune"),
    "verbosity": ("ignored", "a length hint; the answer is as long as the checked answer"),
    "service_tier": ("ignored", "there is one tier"),
    "moderation": ("ignored", "nothing here runs OpenAI's moderation"),
    # ours
    "article_ids": ("honoured", "search only these articles"),
    "outlets": ("honoured", "search only these outlets"),
    "date_from": ("honoured", "search only passages from this day"),
    "date_to": ("honoured", "search only passages up to this day"),
    "as_of": ("honoured", "the day relative dates are read from"),
    "date_filter": ("honoured", "false: dates in the question do not narrow the search"),
}


class ApiError(RagError):
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


def bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


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
    dates_narrow: bool = True  # the request's `date_filter`
    as_of: date | None = None
    stop: list[str] = field(default_factory=list)
    max_tokens: int | None = None
    task: openwebui.Task | None = None  # an Open WebUI task, answered without the engine
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
    (400 or 404, one line) for what cannot be answered as asked. An Open WebUI task
    prompt (`web.openai.openwebui`) is taken as its task, not as a question."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object")
    if "model" not in body or body["model"] is None:
        raise bad("model is required: one of " + ", ".join(MODELS), "model")
    model = body["model"]
    if not isinstance(model, str) or model not in MODELS:
        raise unknown_model(model)
    _refuse_what_cannot_be_honoured(body)
    n = body.get("n", 1)
    if n not in (None, 1) or isinstance(n, bool):
        raise bad("n must be 1: one answer is written per question", "n")
    stream = _flag(body, "stream", False)
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad("stream_options must be an object", "stream_options")
    unknown = sorted(k for k in body if k not in PARAMETERS)
    if unknown:
        logger.debug("API request parameters ignored as unknown: %s", ", ".join(unknown[:20]))
    turns = _turns(body.get("messages"))
    task = openwebui.task_of(turns[-1]["content"]) if turns[-1]["role"] == "user" else None
    _response_format(body, task)
    common = {"model": model, "mode": MODELS[model], "stream": stream,
              "include_usage": _flag(options, "include_usage", False),
              "stop": _stop(body), "max_tokens": _max_tokens(body)}
    if task is not None:
        return Asked(question=f"(Open WebUI's {task.kind} task)", history=[],
                     filters=Filters(), task=task, **common)
    question, history = _conversation(turns, limits)
    try:
        filters = limits.filters(_strings(body, "article_ids"), _strings(body, "outlets"),
                                 _day(body, "date_from", limits), _day(body, "date_to", limits))
        as_of = limits.day(body.get("as_of"), "as_of")
    except ValueError as exc:
        raise bad(str(exc)) from None
    return Asked(question=question, history=history, filters=filters,
                 dates_narrow=_flag(body, "date_filter", True), as_of=as_of, **common)


def _refuse_what_cannot_be_honoured(body: dict[str, Any]) -> None:
    """400s for what would otherwise be ignored while the client counts on it: a tool
    that must be called, log probabilities, audio, web search, a token bias, and
    values out of OpenAI's own ranges."""
    for key, low, high in (("temperature", 0, 2), ("top_p", 0, 1),
                           ("presence_penalty", -2, 2), ("frequency_penalty", -2, 2)):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not low <= value <= high):
            raise bad(f"{key} must be a number from {low} to {high}", key)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad("seed must be an integer", "seed")
    for key, named in (("tool_choice", "tools"), ("function_call", "functions")):
        choice = body.get(key)
        if choice in (None, "auto", "none"):
            continue
        if choice == "required" or isinstance(choice, dict):
            raise bad(f"{key}: no tool or function is ever called here (answers come from "
                      f"the library); send {key} 'auto' or leave {named} out",
                      key, "unsupported_parameter")
        raise bad(f"{key} must be 'auto', 'none', 'required' or a function", key)
    for key in ("tools", "functions"):
        if body.get(key) is not None and not isinstance(body[key], list):
            raise bad(f"{key} must be a list", key)
    if body.get("logprobs") not in (None, False):
        raise bad("logprobs: answers are checked sentences, not sampled tokens; there are "
                  "no log probabilities to send", "logprobs", "unsupported_parameter")
    if body.get("top_logprobs") not in (None, 0):
        raise bad("top_logprobs: there are no log probabilities to send", "top_logprobs",
                  "unsupported_parameter")
    if body.get("audio") is not None:
        raise bad("audio: answers are text only", "audio", "unsupported_parameter")
    if body.get("modalities") not in (None, ["text"]):
        raise bad("modalities: answers are text only (['text'])", "modalities",
                  "unsupported_parameter")
    if body.get("web_search_options") is not None:
        raise bad("web_search_options: answers come from the library only, not the web",
                  "web_search_options", "unsupported_parameter")
    if body.get("logit_bias") not in (None, {}):
        raise bad("logit_bias: no token can be forbidden or forced in a checked, quoted "
                  "answer", "logit_bias", "unsupported_parameter")


def _response_format(body: dict[str, Any], task: openwebui.Task | None) -> None:
    """Text is always what is sent; a JSON object only where the answer is one (an Open
    WebUI task's); a JSON schema never (nothing here can promise it)."""
    fmt = body.get("response_format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text" or (kind == "json_object" and task is not None):
        return
    if kind in ("json_object", "json_schema"):
        raise bad(f"response_format {kind}: answers are prose with [n] citations and their "
                  "sources, not JSON; leave response_format out (the citations come as JSON "
                  "in the response's `citations`)", "response_format", "unsupported_parameter")
    raise bad("response_format must be {\"type\": \"text\"}", "response_format")


def _stop(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if (not isinstance(stops, list) or len(stops) > MAX_STOPS
            or not all(isinstance(s, str) and 0 < len(s) <= STOP_CHARS for s in stops)):
        raise bad(f"stop must be a string or a list of up to {MAX_STOPS} non-empty strings "
                  f"of at most {STOP_CHARS} characters", "stop")
    return list(stops)


def _max_tokens(body: dict[str, Any]) -> int | None:
    limits = []
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad(f"{key} must be a whole number of at least 1", key)
        limits.append(value)
    return min(limits, default=None)


def conversation(messages: Any, limits: Limits  # noqa: ANN401
                 ) -> tuple[str, list[dict[str, Any]]]:
    """The last user message as the question, the user and assistant turns before it
    as history (our own notes and sources cut from the answers). System prompts are
    not ours to follow: the engine answers from the articles only."""
    return _conversation(_turns(messages), limits)


def _turns(messages: Any) -> list[dict[str, Any]]:  # noqa: ANN401
    """The messages as {role, content} turns with their text, the last one the user's."""
    if not isinstance(messages, list) or not messages:
        raise bad("messages must be a non-empty list of {role, content} objects", "messages")
    turns: list[dict[str, Any]] = []
    for number, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad(f"messages[{number}] must be a {{role, content}} object", "messages")
        role = message.get("role")
        if role is None:
            raise bad(f"messages[{number}] needs a role ({', '.join(ROLES)})", "messages")
        if role not in ROLES:
            raise bad(f"messages[{number}]: the role {str(role)[:40]!r} is not one of "
                      f"{', '.join(ROLES)}", "messages")
        turns.append({"role": role, "content": _text(message, number)})
    if turns[-1]["role"] != "user":
        raise bad("the last message must be the user's question", "messages")
    return turns


def _conversation(turns: list[dict[str, Any]], limits: Limits
                  ) -> tuple[str, list[dict[str, Any]]]:
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

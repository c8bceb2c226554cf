"""OpenAI's chat-completion shapes, in and out: what a request asks of the engine, and
the answer as a completion or as stream chunks (the HTTP side is `web.openai.api`).

A stock client shows only `choices[0].message.content`, so the content carries the
answer with its `[n]` markers and, after it, the notes and a plain-text list of the
numbered sources: a front-end that knows nothing of us still shows where each claim
came from. The full citation objects (`rag ask --json`'s, spans included) go in the
extra top-level `citations`, and the rest of the answer (refusal, choices asked back,
date filter, mode, notes) in `rag`: stock clients ignore fields they do not know. A
stream also sends each citation as an Open WebUI `source` event (its citation chips).

Every request parameter is honoured, refused with a 400 or ignored for a stated
reason (`PARAMETERS`): `max_tokens`/`max_completion_tokens` and `stop` cut the content
as sent (`Cut`, tokens counted with tiktoken's cl100k_base, the GPT-4 encoding), with
`finish_reason` "length" or "stop"; what cannot be honoured (JSON output, a required
tool call, log probabilities, audio, web search, out-of-range values, no `model`) is
refused rather than silently answered in prose.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

from rag.answer.retrieve import Filters
from rag.types import Answer
from web.limits import FIELD_CHARS, Limits
from web.openai import openwebui

logger = logging.getLogger(__name__)

MODELS = {  # model id -> answer mode (None: the configured default, RAG_ANSWER_MODE)
    "news-rag": None,
    "news-rag-extractive": "extractive",
    "news-rag-llm": "llm",
}
DEFAULT_MODEL = "news-rag"
TRAILER = "\n\n---\n"  # where the notes and sources begin; cut from assistant turns sent back
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
    date_filter: bool = True
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
                 date_filter=_flag(body, "date_filter", True), as_of=as_of, **common)


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
def _encoding() -> Any:  # noqa: ANN401 - tiktoken's Encoding
    """cl100k_base (GPT-4's encoding), from tiktoken's files bundled with llama-index."""
    from llama_index.core.utils import get_tokenizer

    return get_tokenizer().func.__self__  # the Encoding whose encode it is


def _tokens(text: str) -> int:
    return len(_encoding().encode(text, disallowed_special=())) if text else 0


def first_tokens(text: str, count: int) -> str:
    """The longest beginning of `text` within `count` tokens (never half a character)."""
    encoding = _encoding()
    tokens = encoding.encode(text, disallowed_special=())
    if len(tokens) <= count:
        return text
    return encoding.decode_bytes(tokens[:count]).decode("utf-8", "ignore")


class Cut:
    """What a client is sent of a content, fed as it is written: it ends before the
    first stop sequence (`finish` "stop") or at `max_tokens` tokens (`finish`
    "length"). The end of what was fed that may begin a stop sequence, and with a
    token limit the last word (its tokens depend on how it ends), are held back until
    the next piece (or `end`) settles them; so a stream sends what a whole response
    would."""

    def __init__(self, stop: list[str], max_tokens: int | None) -> None:
        self.stops, self.max_tokens = stop, max_tokens
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.held = self.sent = ""
        self.finish: str | None = None  # "stop" or "length" once the content is cut

    @classmethod
    def of(cls, asked: Asked) -> Cut:
        return cls(asked.stop, asked.max_tokens)

    def feed(self, text: str) -> str:
        """What may be sent of the content so far, beyond what already was."""
        if self.finish:
            return ""
        self.held += text
        found = [i for i in (self.held.find(s) for s in self.stops) if i >= 0]
        if found:
            out, self.held, self.finish = self.held[:min(found)], "", "stop"
        else:
            keep = min(self.hold, len(self.held))
            if self.max_tokens is not None:  # a word's tokens depend on how it ends
                word = re.search(r"\s+\S*$", self.held)
                keep = max(keep, len(self.held) - word.start() if word else len(self.held))
            out, self.held = self.held[:len(self.held) - keep], self.held[len(self.held) - keep:]
        return self._release(out)

    def end(self) -> str:
        """The rest, once there is no more content."""
        out, self.held = ("" if self.finish else self.held), ""
        return self._release(out)

    def _release(self, out: str) -> str:
        if self.max_tokens is not None and out:
            whole = self.sent + out
            if _tokens(whole) > self.max_tokens:
                cut = first_tokens(whole, self.max_tokens)
                out, self.finish, self.held = cut[len(self.sent):], "length", ""
                if not cut.startswith(self.sent):  # a token boundary moved: send no more
                    out = ""
        self.sent += out
        return out


def completion(asked: Asked, answer: Answer) -> dict[str, Any]:
    return reply(asked, content(answer), extras(answer))


def reply(asked: Asked, text: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A whole chat completion of `text`, cut as the request asks."""
    cut = Cut.of(asked)
    text = cut.feed(text) + cut.end()
    return {"id": asked.id, "object": "chat.completion", "created": asked.created,
            "model": asked.model,
            "choices": [{"index": 0, "finish_reason": cut.finish or "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": text,
                                     "refusal": None}}],
            "usage": usage(asked, text), **(extra or {})}


def chunk(asked: Asked, delta: dict[str, Any], finish: str | None = None,
          **extra: Any) -> dict[str, Any]:  # noqa: ANN401
    return {"id": asked.id, "object": "chat.completion.chunk", "created": asked.created,
            "model": asked.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                         "logprobs": None}], **extra}


def usage_chunk(asked: Asked, text: str) -> dict[str, Any]:
    return {"id": asked.id, "object": "chat.completion.chunk", "created": asked.created,
            "model": asked.model, "choices": [], "usage": usage(asked, text)}


def source_events(answer: Answer) -> list[dict[str, Any]]:
    """The citations as Open WebUI's `source` events, in their numbering: a stream chunk
    carrying one as `event` becomes a citation chip, and `[n]` in the text links to
    the n-th (Open WebUI tells sources apart by `metadata.source` and links markers by
    `metadata.name`, so both are made distinct per citation)."""
    events, names = [], set()
    for c in answer.citations:
        name = " · ".join(w for w in (c.title or "untitled", c.outlet, c.published) if w)
        if name in names:
            name = f"{name} · passage {c.n}"
        names.add(name)
        url = c.url if c.url and c.url.startswith(("http://", "https://")) else None
        metadata = {"source": f"{c.article_id}:{c.n}", "name": name, "n": c.n,
                    "article_id": c.article_id, "start": c.start, "end": c.end,
                    "outlet": c.outlet, "published": c.published}
        if url:
            metadata["source_url"] = url
        events.append({"type": "source", "data": {
            "source": {"id": c.article_id, "name": name, **({"url": url} if url else {})},
            "document": [c.quote], "metadata": [metadata]}})
    return events

"""The answer as OpenAI shapes it: a whole chat completion, or stream chunks (the request
is checked by `web.openai.params`; the HTTP side is `web.openai.api`).

A stock client shows only `choices[0].message.content`, so the content carries the
answer with its `[n]` markers and, after it (from `TRAILER`), the notes and a
plain-text list of the numbered sources: a front-end that knows nothing of us still
shows where each claim came from. The full citation objects (`rag ask --json`'s, spans
included) go in the extra top-level `citations`, and the rest of the answer (refusal,
choices asked back, date filter, mode, notes) in `rag`: stock clients ignore fields
they do not know. A stream also sends each citation as an Open WebUI `source` event
(its citation chips). The content is cut as the request asks (`web.openai.cut`).
"""

from __future__ import annotations

from typing import Any

from rag.types import Answer
from web.openai.cut import Cut, count_tokens
from web.openai.params import TRAILER, Asked


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
    prompt = count_tokens(asked.question) + sum(count_tokens(t["content"])
                                                for t in asked.history)
    completion = count_tokens(text)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


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

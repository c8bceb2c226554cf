"""The Chat tab's events: asking (streamed into the chat), a new chat, the export.

A conversation lives in the session as `rag.types.Turn`s; the chat shows them as
HTML made by `web.ui.render`, and Export writes them with `web.ui.export`.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr

from rag.answer.condense import history_of
from rag.answer.request import Ask
from rag.types import Turn
from web.service import EMPTY_LIBRARY, NewsApp
from web.ui import render
from web.ui.export import conversation_markdown

EXPORT_MAX_AGE = 3600.0  # seconds an export file is kept for its download
EXPORTS = Path(tempfile.gettempdir()) / "newsrag-exports"


def chat(app: NewsApp, question: str, messages: list[dict[str, Any]] | None,
         turns: list[Turn] | None, article_ids: list[str] | None, outlets: list[str] | None,
         date_from: Any, date_to: Any, mode: str | None, dates_narrow: bool = True
         ) -> Iterator[tuple[Any, ...]]:
    """Yields (chatbot, turns, question box, export button) as the answer is written."""
    messages, turns = list(messages or []), list(turns or [])
    try:
        question = app.limits.question(question)
    except ValueError as exc:
        messages.append({"role": "assistant",
                         "content": render.message_html(f"Not asked: {exc}.", "error")})
        yield messages, turns, gr.skip(), gr.skip()
        return
    if not question:
        yield messages, turns, "", gr.skip()
        return
    messages += [{"role": "user", "content": render.question_html(question)},
                 {"role": "assistant", "content": render.streaming_html("")}]
    yield messages, turns, "", gr.skip()
    if len(turns) >= app.settings.max_history_turns:
        messages[-1]["content"] = render.message_html(
            f"This conversation has reached {len(turns)} questions "
            "(RAG_MAX_HISTORY_TURNS): click New chat to go on.", "error")
        yield messages, turns, question, gr.skip()
        return
    try:
        filters = app.limits.filters(article_ids, outlets, date_from, date_to)
        stream = app.answer(Ask(question, history=history_of(turns), filters=filters,
                                mode=mode, dates_narrow=dates_narrow is not False))
        text = ""
        for delta in stream:
            text += delta
            messages[-1]["content"] = render.streaming_html(text)
            yield messages, turns, "", gr.skip()
        answer = stream.result
    except Exception as exc:  # never leave the chat on "Searching…"; never show internals
        line = app.error_line(exc, f"answering {question[:200]!r}")
        messages[-1]["content"] = render.message_html(f"Could not answer: {line}", "error")
        yield messages, turns, "", gr.skip()
        return
    if app.is_empty_answer(answer):
        messages[-1]["content"] = render.message_html(EMPTY_LIBRARY, "empty")
        yield messages, turns, "", gr.skip()
        return
    prefix = f"t{len(turns) + 1}-{secrets.token_hex(3)}"
    lookup = functools.cache(app.article_text)  # each cited article read once
    messages[-1]["content"] = render.answer_html(answer, prefix, lookup)
    turns.append(Turn(question=question, result=answer))
    yield messages, turns, "", gr.Button(interactive=True)


def new_chat() -> tuple[Any, ...]:
    return [], [], gr.Button(interactive=False)


def export_file(turns: list[Turn] | None, folder: Path = EXPORTS) -> str:
    """The conversation as a Markdown file, written when the user asks for it; files
    older than an hour (long downloaded) are deleted on the way."""
    if not turns:
        raise gr.Error("Nothing to export yet: ask a question first.", print_exception=False)
    _prune(folder)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / secrets.token_hex(8) / f"conversation-{stamp}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(conversation_markdown(turns), encoding="utf-8")
    return str(path)


def _prune(folder: Path) -> None:
    cutoff = time.time() - EXPORT_MAX_AGE
    for sub in folder.glob("*") if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            if sub.stat().st_mtime < cutoff:
                for file in sub.iterdir():
                    file.unlink()
                sub.rmdir()

"""The plain JSON API (gradio_client): the page's operations without the widgets.

Refusals (limits, roles) are `RagError`s, which `shows_errors` turns into the gr.Error
the client sees as its message. An answer is `Answer.to_json()`, the same JSON the CLI
prints and eval records.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from rag.answer.request import Ask
from rag.errors import RagError
from web.limits import EXPORT_CHARS
from web.service import NewsApp
from web.ui.export import ExportError, conversation_markdown

LIBRARY_KEYS = ["title", "published", "outlet", "chunks", "source", "id"]


def register(app: NewsApp) -> None:
    """Adds the API's endpoints to the Blocks being built."""

    def ask(question: str, history: list[dict[str, Any]] | None = None,
            article_ids: list[str] | None = None, outlets: list[str] | None = None,
            date_from: str | None = None, date_to: str | None = None,
            mode: str | None = None, question_dates: bool = True,
            as_of: str | None = None) -> dict[str, Any]:
        """One answer as JSON (each source file is `file_path`).
        `history`: earlier turns as [{"role": "user"|"assistant", "content": ...}].
        `question_dates`: dates in the question narrow the search (`date_filter` in the
        answer says how); `as_of`: YYYY-MM-DD, answer as if today were that day."""
        try:
            question = app.limits.question(question)
            day = app.limits.day(as_of, "as_of")
            turns = app.limits.history(history)
            filters = app.limits.filters(article_ids, outlets, date_from, date_to)
            answer = app.answer(Ask(question, history=turns, filters=filters, mode=mode,
                                    dates_narrow=bool(question_dates), as_of=day)).result
        except Exception as exc:
            line = app.error_line(exc, f"answering {str(question)[:200]!r}")
            raise gr.Error(line, print_exception=False) from None
        return answer.to_json()

    @shows_errors(app)
    def library(query: str = "") -> list[dict[str, Any]]:
        """The stored articles: title, published, outlet, chunks, source, id."""
        return [dict(zip(LIBRARY_KEYS, row, strict=True)) for row in app.library_rows(query)]

    # The add endpoints are generators (annotated with what each step yields, which is
    # what gradio reads): cancelling a job closes them, and the ingest stops. A plain
    # function would go on writing in its worker thread after the client gave up.
    @shows_errors(app)
    def add_text(text: str, title: str = "", outlet: str = "",
                 request: gr.Request = None) -> dict[str, Any]:  # type: ignore[assignment]
        """Add pasted article text (editors); the ingest report (the last one sent)."""
        app.require_editor(request)
        ref = app.save_text(text, title or "")
        yield from app.ingest_reports([ref], {ref: "pasted text"}, outlet or "")

    @shows_errors(app)
    def add_urls(urls: list[str], outlet: str = "",
                 request: gr.Request = None) -> dict[str, Any]:  # type: ignore[assignment]
        """Add articles by http(s) URL (editors); the ingest report (the last one sent)."""
        app.require_editor(request)
        yield from app.ingest_reports(app.limits.urls(list(urls or [])), {}, outlet or "",
                                      local=False)

    @shows_errors(app)
    def remove(article_id: str,
               request: gr.Request = None) -> str:  # type: ignore[assignment]
        """Remove an article (and its chunks) by id (editors)."""
        app.require_editor(request)
        return app.remove(article_id)

    @shows_errors(app)
    def export(turns: list[dict[str, Any]]) -> str:
        """Markdown of [{"question": ..., "result": <ask's answer>}, ...]."""
        turns = list(turns or [])
        if len(turns) > app.settings.max_history_turns + 1:
            raise ExportError(f"{len(turns)} turns given; a conversation holds at most "
                              f"{app.settings.max_history_turns + 1} (RAG_MAX_HISTORY_TURNS)")
        if len(json.dumps(turns, default=str)) > EXPORT_CHARS:
            raise ExportError(f"the turns are over {EXPORT_CHARS:,} characters as JSON")
        return conversation_markdown(turns)

    gr.api(ask, api_name="ask", concurrency_id="answer",
           concurrency_limit=app.settings.answer_concurrency)
    gr.api(library, api_name="library")
    for fn, name in ((add_text, "add_text"), (add_urls, "add_urls"), (remove, "remove")):
        gr.api(fn, api_name=name, concurrency_id="library", concurrency_limit=1)
    gr.api(export, api_name="export")


F = TypeVar("F", bound=Callable[..., Any])


def shows_errors(app: NewsApp) -> Callable[[F], F]:
    """A handler whose `RagError`s reach the page or client as their line (without the
    server's paths): gradio shows only a `gr.Error`'s message (the app is launched with
    show_error=False, so anything else is "Error"). A generator stays one, as gradio
    needs to see to stream and cancel it."""

    def refused(exc: RagError) -> gr.Error:
        return gr.Error(app.redact(str(exc)), print_exception=False)

    def wrap(fn: F) -> F:
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def streaming(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
                try:
                    return (yield from fn(*args, **kwargs))
                except RagError as exc:
                    raise refused(exc) from None
            return streaming  # type: ignore[return-value]

        @functools.wraps(fn)
        def plain(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            try:
                return fn(*args, **kwargs)
            except RagError as exc:
                raise refused(exc) from None
        return plain  # type: ignore[return-value]

    return wrap

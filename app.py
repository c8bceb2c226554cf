"""The web UI: a chat whose answers cite the passages they come from, and the library.

    python app.py [--host HOST] [--port PORT] [--data-dir DIR]

Opens http://127.0.0.1:7860 (RAG_HOST / RAG_PORT) on the embedded store. Login is
optional: RAG_AUTH=user:password[:role], several entries separated by commas, or the
path of a file with one entry a line (see rag/auth.py). The answering, ingesting and
rendering live in `rag/` and `ingest/`; this file only wires them to gradio.

What a web user may do is narrower than what the CLI's user may (README, Safety): add
only http(s) URLs, uploads and pasted text, never server paths; every request is
bounded (question, paste, URLs, history, upload size, queue length); web users see
source names, never server paths, and errors as one line (details go to the log).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import queue
import re
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gradio as gr

from ingest.fetch import FetchPolicy
from ingest.pipeline import STATUSES, Report, Result, ingest
from ingest.sources import is_url
from rag import render
from rag.auth import (
    EDITOR,
    LoginGuard,
    LoginThrottle,
    User,
    bind_warning,
    checker,
    load_users,
    role_of,
)
from rag.engine import ANSWER_MODES, AnswerResult, Engine
from rag.models import StoredArticle
from rag.retrieval import Filters
from rag.settings import Settings, get_settings  # sets the offline, no-telemetry environment
from rag.store import ArticleStore, StoreError

EXAMPLES = [
    "Why did relations between Iran and Azerbaijan sour?",
    "When did Pezeshkian meet Aliyev?",
    "Why does Iran oppose the Zangezur corridor?",
    "How many ethnic Azerbaijanis live in Iran?",
]
LIBRARY_KEYS = ["title", "published", "outlet", "chunks", "source", "id"]
LIBRARY_COLUMNS = ["Title", "Published", "Outlet", "Chunks", "Source", "ID"]
FORMATS = "txt, md, html, pdf, jsonl"
logger = logging.getLogger("newsrag.app")
EXPORT_MAX_AGE = 3600.0  # seconds an export file is kept for its download
UNEXPECTED = "something went wrong on the server (the details are in its log)."
# Bounds on what one web request may carry (the user-facing ones are settings).
HISTORY_TURN_CHARS = 20_000  # an answer with its [n] markers is a few thousand at most
FIELD_CHARS = 1000  # a headline, outlet, search or id: far above any real one
URL_CHARS = 2048  # what browsers and servers commonly accept
FILTER_ITEMS = 1000  # articles or outlets picked as a filter
EXPORT_CHARS = 2_000_000  # the turns /export takes, as JSON: ~100 times a long conversation
EMPTY_LIBRARY = (
    "Your library is empty, so there is nothing to answer from yet.\n"
    "Add articles in the Library tab: upload files (" + FORMATS + "), give a URL, or paste "
    "the text.\n"
    "Or from a terminal: python -m ingest PATH-OR-URL ..."
)


class NewsApp:
    """The state one app process shares between sessions: one store, one engine."""

    def __init__(self, settings: Settings, engine: Engine | None = None,
                 users: dict[str, User] | None = None) -> None:
        self.settings = settings
        self.engine = engine or Engine(settings)
        self.store: ArticleStore = self.engine.store
        self.uploads = Path(settings.data_dir) / "uploads"
        self.users = users  # None: no login, whoever reaches the page edits
        self._uploads_prefix = str(self.uploads.resolve()) + os.sep
        self._warm_lock = threading.Lock()
        self._warm = False
        self.exports = Path(tempfile.gettempdir()) / "newsrag-exports"

    # -- start-up ----------------------------------------------------------

    def warm_up(self) -> None:
        """Load the embedding model and the keyword index before the first question.

        Run in a thread at start-up; a question that comes first waits for it here
        rather than loading a second copy of the model.
        """
        with self._warm_lock:
            if self._warm:
                return
            started = time.perf_counter()
            self.store.embed_model  # noqa: B018 - loads the model
            if self._has_chunks():
                self.engine.keyword.ensure()
            self._warm = True
            logger.info("Ready to answer (model and keyword index loaded in %.1f s)",
                        time.perf_counter() - started)

    def _has_chunks(self) -> bool:
        return self.store.exists and self.store.chunks.count() > 0

    def mode_text(self) -> str:
        if self.engine.resolve_mode(None) == "llm":
            llm = self.engine.llm()
            name = llm.model if llm is not None else self.settings.llm_model
            return (f"Answers are written by the LLM `{name}`; every sentence is checked "
                    "against the passages it cites.")
        return ("Answers are **extractive**: sentences quoted from the articles (no LLM is "
                "configured; set RAG_LLM_MODEL and OPENAI_BASE_URL to use one).")

    def banner(self) -> str:
        """Markdown above the tabs: how to add articles while the library is empty."""
        if self._has_chunks():
            return ""
        first, *rest = EMPTY_LIBRARY.splitlines()
        return "  \n".join([f"**{first}**", *rest])

    # -- who may do what, and how much -------------------------------------

    def role(self, request: gr.Request | None) -> str:
        return role_of(self.users, getattr(request, "username", None))

    def require_editor(self, request: gr.Request | None) -> None:
        if self.role(request) != EDITOR:
            raise gr.Error("Only editors may add or remove articles; you are logged in as a "
                           "reader.", print_exception=False)

    def check_question(self, question: str | None) -> str:
        """The question with its whitespace collapsed, refused over the length limit (raw
        text over four times the limit is refused before any work on it)."""
        limit = self.settings.max_question_chars
        question = question or ""
        if len(question) <= limit * 4:
            question = " ".join(question.split())
        if len(question) > limit:
            raise ValueError(f"the question is {len(question):,} characters long; the limit is "
                             f"{limit:,} (RAG_MAX_QUESTION_CHARS)")
        return question

    def check_history(self, history: Any) -> list[dict[str, Any]]:
        """The API's `history`, refused when it is not turns or longer than the limit."""
        history = list(history or [])
        if not all(isinstance(t, dict) and isinstance(t.get("content", ""), str)
                   for t in history):
            raise ValueError('history must be a list of {"role": ..., "content": ...} objects')
        limit = self.settings.max_history_turns
        asked = sum(1 for t in history if t.get("role", "user") == "user")
        if asked > limit or len(history) > 2 * limit + 1:
            raise ValueError(f"the history holds {asked} questions; the limit is {limit} "
                             "(RAG_MAX_HISTORY_TURNS): start a new conversation")
        longest = max((len(t.get("content", "")) for t in history), default=0)
        if longest > HISTORY_TURN_CHARS:
            raise ValueError(f"a history turn is {longest:,} characters long; the limit is "
                             f"{HISTORY_TURN_CHARS:,}")
        return history

    def check_paste(self, text: str | None) -> str:
        text = text or ""
        if not text.strip():
            raise gr.Error("Paste the article's text first.", print_exception=False)
        limit = self.settings.max_paste_chars
        if len(text) > limit:
            raise gr.Error(f"The pasted text is {len(text):,} characters long; the limit is "
                           f"{limit:,} (RAG_MAX_PASTE_CHARS). Upload it as a file instead.",
                           print_exception=False)
        return text

    def check_field(self, value: str | None, what: str, limit: int = FIELD_CHARS) -> str:
        """A short field (headline, outlet, search, id, URL), refused over its limit."""
        value = value or ""
        if len(value) > limit:
            raise gr.Error(f"The {what} is {len(value):,} characters long; the limit is "
                           f"{limit:,}.", print_exception=False)
        return value

    def web_urls(self, urls: list[str]) -> list[str]:
        """The URLs a web user asked for: http(s) only, never server paths or stdin."""
        urls = [u.strip() for u in urls if u and u.strip()]
        if not urls:
            raise gr.Error("Give at least one http:// or https:// URL.", print_exception=False)
        bad = [u for u in urls if not is_web_url(u)]
        if bad:
            shown = ", ".join(repr(b[:80]) for b in bad[:3]) + (" …" if len(bad) > 3 else "")
            raise gr.Error(f"Only http:// and https:// URLs can be added here (not {shown}); "
                           "upload files instead.", print_exception=False)
        if len(urls) > self.settings.max_urls:
            raise gr.Error(f"{len(urls)} URLs given; the limit is {self.settings.max_urls} a "
                           "request (RAG_MAX_URLS).", print_exception=False)
        for url in urls:
            self.check_field(url, "URL", URL_CHARS)
        return urls

    # -- what web users see of server paths ---------------------------------

    def source_name(self, path: str | None) -> str:
        """A source as a web user may see it: its place under uploads, or its file name
        (with a jsonl line), never an absolute server path."""
        if not path:
            return ""
        file, sep, line = path.partition("#L")
        if file.startswith(self._uploads_prefix):
            name = "uploads/" + file[len(self._uploads_prefix):].replace(os.sep, "/")
        else:
            name = Path(file).name
        return name + (f"#L{line}" if sep else "")

    def public(self, result: AnswerResult) -> AnswerResult:
        """The answer with source names in place of server paths (chat, API, export)."""
        for citation in result.citations:
            citation.path = self.source_name(citation.path) or None
        for item in result.retrieved:
            item["path"] = self.source_name(item.get("path")) or None
        return result

    def redact(self, text: str) -> str:
        """An error line without the server's data folder in it."""
        for where in {str(Path(self.settings.data_dir).resolve()), str(self.settings.data_dir)}:
            text = text.replace(where, "<data folder>")
        return text

    def error_line(self, exc: Exception, doing: str) -> str:
        """What a web user is told of a failure: our own one-line reasons (ValueError,
        StoreError) without server paths; of anything else only that it happened, with
        the traceback in the server's log."""
        if isinstance(exc, gr.Error):
            return self.redact(str(exc.message))
        if isinstance(exc, ValueError | StoreError):
            return self.redact(str(exc))
        logger.error("%s failed", doing, exc_info=exc)
        return UNEXPECTED

    # -- chat --------------------------------------------------------------

    def article_text(self, article_id: str) -> str | None:
        article = self.store.get_article(article_id) if article_id else None
        return article.text if article else None

    def filters(self, article_ids: list[str] | None, outlets: list[str] | None,
                date_from: Any, date_to: Any) -> Filters:
        for what, items in (("articles", article_ids), ("outlets", outlets)):
            if len(items or []) > FILTER_ITEMS or any(len(str(i)) > FIELD_CHARS
                                                      for i in items or []):
                raise ValueError(f"the {what} filter is too large (at most {FILTER_ITEMS} "
                                 f"items of {FIELD_CHARS:,} characters)")
        start, end = parse_date(date_from), parse_date(date_to)
        if start and end and start > end:
            raise ValueError(f"the date range is empty: {start} is after {end}")
        return Filters(article_ids=list(article_ids or []), outlets=list(outlets or []),
                       date_from=start, date_to=end)

    def answer(self, question: str, history: list[dict[str, Any]], filters: Filters,
               mode: str | None) -> Iterator[str | AnswerResult]:
        """The engine's stream, after warm-up, with a hint when filters leave nothing and
        source names in place of server paths."""
        self.warm_up()
        for event in self.engine.stream(question, history=history, filters=filters,
                                        mode=mode or None):
            if isinstance(event, AnswerResult):
                if filters and not event.retrieved:
                    hint = ("no passage matches the filters (articles, outlets, dates); "
                            "clear them to search the whole library")
                    event.notice = "; ".join(x for x in (event.notice, hint) if x)
                event = self.public(event)
            yield event

    def chat(self, question: str, messages: list[dict[str, Any]] | None,
             turns: list[dict[str, Any]] | None, article_ids: list[str] | None,
             outlets: list[str] | None, date_from: Any, date_to: Any, mode: str | None,
             ) -> Iterator[tuple[Any, ...]]:
        """Chat event: yields (chatbot, turns, question box, export button) as it goes."""
        messages, turns = list(messages or []), list(turns or [])
        try:
            question = self.check_question(question)
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
        if not self._has_chunks():
            messages[-1]["content"] = render.message_html(EMPTY_LIBRARY, "empty")
            yield messages, turns, "", gr.skip()
            return
        if len(turns) >= self.settings.max_history_turns:
            messages[-1]["content"] = render.message_html(
                f"This conversation has reached {len(turns)} questions "
                "(RAG_MAX_HISTORY_TURNS): click New chat to go on.", "error")
            yield messages, turns, question, gr.skip()
            return
        try:
            filters = self.filters(article_ids, outlets, date_from, date_to)
            text, result = "", None
            for event in self.answer(question, render.engine_history(turns), filters, mode):
                if isinstance(event, AnswerResult):
                    result = event
                else:
                    text += event
                    messages[-1]["content"] = render.streaming_html(text)
                    yield messages, turns, "", gr.skip()
        except Exception as exc:  # never leave the chat on "Searching…"; never show internals
            line = self.error_line(exc, f"answering {question[:200]!r}")
            messages[-1]["content"] = render.message_html(f"Could not answer: {line}", "error")
            yield messages, turns, "", gr.skip()
            return
        assert result is not None
        prefix = f"t{len(turns) + 1}-{secrets.token_hex(3)}"
        lookup = functools.cache(self.article_text)  # each cited article read once
        messages[-1]["content"] = render.answer_html(result, prefix, lookup)
        turns.append({"question": question, "result": result.to_json()})
        yield messages, turns, "", gr.Button(interactive=True)

    def export_file(self, turns: list[dict[str, Any]]) -> str:
        """The conversation as a Markdown file, written when the user asks for it; files
        older than an hour (long downloaded) are deleted on the way."""
        self._prune_exports()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = self.exports / secrets.token_hex(8) / f"conversation-{stamp}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render.conversation_markdown(turns), encoding="utf-8")
        return str(path)

    def _prune_exports(self) -> None:
        cutoff = time.time() - EXPORT_MAX_AGE
        for folder in self.exports.glob("*") if self.exports.is_dir() else []:
            with contextlib.suppress(OSError):
                if folder.stat().st_mtime < cutoff:
                    for file in folder.iterdir():
                        file.unlink()
                    folder.rmdir()

    # -- library -----------------------------------------------------------

    def articles(self) -> list[StoredArticle]:
        return self.store.list_articles()

    def library_rows(self, query: str = "", articles: list[StoredArticle] | None = None
                     ) -> list[list[Any]]:
        """Rows of the library table matching every word of `query`."""
        words = self.check_field(query, "search").casefold().split()
        rows = []
        for a in self.articles() if articles is None else articles:
            source = a.url or self.source_name(a.paths[0] if a.paths else "")
            row = [a.title, a.published.isoformat() if a.published else "", a.outlet or "",
                   a.chunks, source, a.id]
            haystack = " ".join(str(x) for x in row).casefold()
            if all(w in haystack for w in words):
                rows.append(row)
        return rows

    def library_count(self, query: str = "", articles: list[StoredArticle] | None = None,
                      shown: int | None = None) -> str:
        articles = self.articles() if articles is None else articles
        if shown is None:
            shown = len(self.library_rows(query, articles=articles))
        chunks = self.store.chunks.count() if self.store.exists else 0
        found = f"{shown} of {len(articles)} shown · " if query.strip() else ""
        return f"{found}{len(articles)} article(s), {chunks} passage(s)"

    def search_library(self, query: str) -> tuple[list[list[Any]], str]:
        articles = self.articles()
        rows = self.library_rows(query, articles=articles)
        return rows, self.library_count(query, articles, len(rows))

    def article_choices(self, articles: list[StoredArticle] | None = None
                        ) -> list[tuple[str, str]]:
        out = []
        for a in self.articles() if articles is None else articles:
            when = f" ({a.published.isoformat()})" if a.published else ""
            out.append((f"{' '.join(a.title.split())[:90]}{when}", a.id))
        return out

    def outlet_choices(self, articles: list[StoredArticle] | None = None) -> list[str]:
        articles = self.articles() if articles is None else articles
        return sorted({a.outlet for a in articles if a.outlet}, key=str.casefold)

    def library_updates(self, query: str, picked_articles: list[str] | None,
                        picked_outlets: list[str] | None) -> tuple[Any, ...]:
        """(table, count, article filter, outlet filter, remove picker, banner)."""
        stored = self.articles()
        rows, count = self.search_library(query or "")
        articles = self.article_choices(stored)
        ids = {v for _, v in articles}
        outlets = self.outlet_choices(stored)
        return (
            rows, count,
            gr.Dropdown(choices=articles, value=[i for i in picked_articles or [] if i in ids]),
            gr.Dropdown(choices=outlets, value=[o for o in picked_outlets or [] if o in outlets]),
            gr.Dropdown(choices=articles, value=None),
            self.banner(),
        )

    def _keep(self, read: Callable[[int], bytes], name: str) -> str:
        """A copy in the data folder, `uploads/<content hash>/<name>`: the stored path
        stays valid, keeps the file's name, and the same file uploaded twice is one source.
        Streamed to a temporary file and renamed into place, so a copy is whole or absent."""
        self.uploads.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, part = tempfile.mkstemp(dir=self.uploads, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                while block := read(1 << 20):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            dest = self.uploads / digest.hexdigest()[:12] / name
            dest.parent.mkdir(exist_ok=True)
            if dest.exists():
                os.unlink(part)
            else:
                os.replace(part, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(part)
            raise
        return str(dest.resolve())

    def save_upload(self, path: str) -> tuple[str | None, str]:
        """(our copy of an uploaded file, or None when it is over the size limit, and the
        name it was uploaded as). Gradio's cached copy is deleted either way."""
        src = Path(path)
        name = re.sub(r"[^\w.-]+", "_", src.name).strip("._")[-100:] or "upload"
        try:
            if src.stat().st_size > self.settings.max_file_bytes:
                return None, src.name
            with src.open("rb") as handle:
                return self._keep(handle.read, name), src.name
        finally:
            forget_gradio_upload(src)

    def save_text(self, text: str, title: str = "") -> str:
        """Pasted text as a .txt file (the first line is the headline, as with the CLI)."""
        body = text.strip()
        if self.check_field(title, "headline").strip():
            body = f"{' '.join(title.split())}\n\n{body}"
        data = io.BytesIO((body + "\n").encode("utf-8"))
        return self._keep(data.read, "pasted.txt")

    def run_ingest(self, refs: list[str], names: dict[str, str], outlet: str = "",
                   on_line: Callable[[str], None] | None = None, *, local: bool = True
                   ) -> dict[str, Any]:
        """Ingest with the pipeline the CLI uses; one log line per result, CLI wording.
        `local=False`: the refs are URLs a web user gave, never read as server paths."""
        self.check_field(outlet, "outlet")
        lines: list[str] = []

        def shown(source: str) -> str:
            for ref, name in names.items():
                source = source.replace(ref, name)
            return self.redact(source)

        def on_result(result: Result) -> None:
            line = (f"failed     {shown(result.source)}: {result.reason}"
                    if result.status == "failed" else shown(result.line()))
            lines.append(line)
            if on_line:
                on_line(line)

        self.warm_up()
        report: Report = ingest(refs, self.store, self.settings, outlet=outlet.strip() or None,
                                progress=False, on_result=on_result, local=local)
        self._forget_failed_uploads(refs, report)
        if self._has_chunks():
            self.engine.keyword.ensure()  # the next question should not wait for it
        return {
            "summary": shown(report.summary()),
            "lines": lines,
            "counts": {s: report.count(s) for s in STATUSES},
            "results": [{**asdict(r), "source": shown(r.source)} for r in report.results],
        }

    def _forget_failed_uploads(self, refs: list[str], report: Report) -> None:
        """Drop our copy of an upload that gave no article (the log says why)."""
        for ref in refs:
            kept = any(r.status != "failed" and (r.source == ref or r.source.startswith(ref + ":"))
                       for r in report.results)
            if not kept:
                self._delete_upload(ref)

    def _delete_upload(self, ref: str) -> None:
        path = Path(ref.split("#L")[0])
        if path.parent.parent != self.uploads.resolve() or not path.is_file():
            return  # not one of our copies: the user's own files are never touched
        if any(p.split("#L")[0] == str(path) for a in self.articles() for p in a.paths):
            return  # another article still comes from it (a line of the same jsonl)
        path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def ingest_stream(self, refs: list[str], names: dict[str, str], outlet: str,
                      progress: gr.Progress | None = None, *, local: bool = True,
                      refused: list[str] | None = None) -> Iterator[str]:
        """The log so far, as results arrive (ingest runs in a worker thread).
        `refused`: lines for sources refused before ingest (e.g. uploads over the limit)."""
        log: list[str] = list(refused or [])
        if not refs:
            log.append("Nothing to add." if not log else f"added 0, failed {len(log)}")
            yield "\n".join(log)
            return
        lines: queue.Queue[str] = queue.Queue()
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["report"] = self.run_ingest(refs, names, outlet, on_line=lines.put,
                                                local=local)
            except Exception as exc:  # a broken store: say so instead of hanging the UI
                box["error"] = "ingest stopped: " + self.error_line(
                    exc, f"ingest of {len(refs)} source(s)")

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        log.append(f"adding {len(refs)} source(s)…")
        yield "\n".join(log)
        done = 0
        while worker.is_alive() or not lines.empty():
            try:
                log.append(lines.get(timeout=0.2))
            except queue.Empty:
                continue
            done += 1
            if progress is not None:
                progress((min(done, len(refs)), len(refs)), desc="ingesting", unit="sources")
            yield "\n".join(log)
        worker.join()
        if "error" in box:
            log.append(box["error"])
        else:
            log.append(box["report"]["summary"])
        yield "\n".join(log)

    def remove(self, article_id: str | None) -> str:
        if not article_id:
            return "Pick an article to remove."
        self.check_field(article_id, "article id")
        article = self.store.get_article(article_id)
        if article is None or not self.store.remove_article(article_id):
            return f"No article with id {article_id}."
        for path in article.paths:  # our own copies of uploads and pasted text
            self._delete_upload(path)
        if self._has_chunks():
            self.engine.keyword.ensure()
        return f"Removed {article.id}: {' '.join(article.title.split())}"


def is_web_url(ref: str) -> bool:
    """An http(s) URL, as ingest reads it, that also names a host."""
    ref = ref.strip()
    return is_url(ref) and bool(urlsplit(ref).hostname)


def forget_gradio_upload(path: Path) -> None:
    """Delete gradio's cached copy of an upload once we have ours (or refused it)."""
    from gradio.utils import get_upload_folder

    with contextlib.suppress(OSError, ValueError):
        cache = Path(get_upload_folder()).resolve()
        if path.resolve().is_relative_to(cache):
            path.unlink()
            with contextlib.suppress(OSError):
                path.parent.rmdir()


def api_json(result: AnswerResult) -> dict[str, Any]:
    """`AnswerResult.to_json()` with each `path` key named `file_path`: gradio_client
    takes any dict with a `path` for a file to download, and would try to fetch it."""
    out = result.to_json()
    for key in ("citations", "retrieved"):
        for item in out.get(key) or []:
            if "path" in item:
                item["file_path"] = item.pop("path")
    return out


def parse_date(value: Any) -> date | None:
    """A date from the date picker (string or timestamp), the API, or nothing."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value).date()
    text = str(value).strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


CSS = """
#chat .rag-answer p { margin: 0 0 .5em 0; }
.rag-cite { text-decoration: none; font-weight: 600; padding: 0 1px; cursor: pointer;
  color: var(--color-accent) !important; }
.rag-refs { margin-left: 1px; }
.rag-unsupported { text-decoration: underline dotted #c0392b; text-underline-offset: 3px; }
.rag-flag { color: #c0392b; font-size: .8em; font-weight: 600; white-space: nowrap; }
.rag-warning { color: #c0392b; font-size: .9em; }
.rag-notice { font-size: .9em; opacity: .85; }
.rag-meta { font-size: .85em; opacity: .75; }
.rag-sources { border-top: 1px solid var(--border-color-primary); margin-top: .4em;
  padding-top: .3em; }
.rag-sources-title { font-weight: 600; font-size: .9em; margin-bottom: .2em; }
.rag-source { margin: .2em 0; border-radius: 6px; padding: .15em .4em; }
.rag-source summary { cursor: pointer; font-size: .92em; }
.rag-source[open] { background: var(--background-fill-secondary); }
.rag-source.rag-flash { outline: 2px solid var(--color-accent); }
.rag-title { font-weight: 600; }
h1 { font-weight: 600 !important; }
.rag-byline, .rag-span { opacity: .8; font-size: .9em; }
.rag-passage { margin: .3em 0; padding-left: .6em; border-left: 3px solid
  var(--border-color-primary); white-space: pre-wrap; }
.rag-passage mark { background: #ffe58a; color: #111; padding: 0 1px; }
.rag-pending .rag-meta { font-style: italic; }
.rag-hidden { display: none !important; }
"""

# A footnote [n] opens its source's <details> and scrolls to it. Without this script
# the link still scrolls there (the details just stay closed).
HEAD = """<script>
document.addEventListener('click', function (ev) {
  var a = ev.target && ev.target.closest ? ev.target.closest('a.rag-cite') : null;
  if (!a) return;
  var id = (a.getAttribute('href') || '').slice(1);
  var el = id ? document.getElementById(id) : null;
  if (!el) return;
  ev.preventDefault();
  el.open = true;
  el.scrollIntoView({block: 'nearest', behavior: 'smooth'});
  el.classList.add('rag-flash');
  setTimeout(function () { el.classList.remove('rag-flash'); }, 1500);
}, true);
</script>"""


def build(app: NewsApp) -> gr.Blocks:
    """The page: a Chat tab and a Library tab, plus the JSON API for gradio_client."""
    # gradio's own cache (uploads, files handed to the browser) is swept every 10 min of
    # files older than an hour; our upload copies live in the data folder instead.
    with gr.Blocks(title="News RAG", analytics_enabled=False,
                   delete_cache=(600, int(EXPORT_MAX_AGE))) as demo:
        gr.Markdown("# News RAG\nAsk questions of your news articles. Every claim cites the "
                    "passage it comes from: click its number to see it.")
        banner = gr.Markdown(app.banner(), elem_id="banner")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat-tab"):
                chat = _chat_tab(app)
            with gr.Tab("Library", id="library-tab"):
                library = _library_tab(app)
        _wire_chat(app, chat)
        _wire_library(app, library, chat, banner)
        demo.load(**_refresh_io(app, library, chat, banner), api_visibility="private")

        def tools_for(request: gr.Request) -> tuple[Any, ...]:
            editor = app.role(request) == EDITOR
            return gr.Column(visible=editor), gr.Column(visible=editor), gr.Markdown(
                visible=not editor)

        demo.load(tools_for, None, [library["add_tools"], library["remove_tools"],
                                    library["reader_note"]], api_visibility="private",
                  show_progress="hidden")
        _api(app)
    return demo


def _chat_tab(app: NewsApp) -> dict[str, Any]:
    c: dict[str, Any] = {"turns": gr.State([])}
    with gr.Row():
        with gr.Column(scale=3):
            c["chatbot"] = gr.Chatbot(
                label="Conversation", elem_id="chat", height=560,
                render_markdown=False, sanitize_html=True, latex_delimiters=[],
                feedback_options=None, buttons=[],
                placeholder="Ask a question about your articles.",
            )
            with gr.Row():
                c["question"] = gr.Textbox(
                    show_label=False, scale=5, elem_id="question", lines=1, max_lines=4,
                    placeholder="Ask a question… (Enter to send)",
                    max_length=app.settings.max_question_chars,
                )
                c["ask"] = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
            with gr.Row():
                c["stop"] = gr.Button("Stop", elem_id="stop", size="sm")
                c["new_chat"] = gr.Button("New chat", elem_id="new-chat", size="sm")
                c["export"] = gr.Button("Export as Markdown", elem_id="export",
                                        interactive=False, size="sm")
            # Filled when Export is clicked, then clicked by script: one click downloads.
            c["export_file"] = gr.DownloadButton("Download", elem_id="export-download",
                                                 elem_classes=["rag-hidden"])
            gr.Examples(EXAMPLES, inputs=c["question"], label="Example questions")
        with gr.Column(scale=1, min_width=260):
            gr.Markdown("### Filters")
            c["articles"] = gr.Dropdown(app.article_choices(), value=[], multiselect=True,
                                        label="Articles", elem_id="filter-articles")
            c["outlets"] = gr.Dropdown(app.outlet_choices(), value=[], multiselect=True,
                                       label="Outlets", elem_id="filter-outlets")
            c["date_from"] = gr.DateTime(include_time=False, type="string",
                                         label="Published from", elem_id="filter-from")
            c["date_to"] = gr.DateTime(include_time=False, type="string",
                                       label="Published until", elem_id="filter-to")
            c["mode"] = gr.Radio(list(ANSWER_MODES), value=app.settings.answer_mode,
                                 label="Answer mode", elem_id="mode")
            gr.Markdown(app.mode_text(), elem_id="mode-info")
    return c


def _library_tab(app: NewsApp) -> dict[str, Any]:
    lib: dict[str, Any] = {}
    with gr.Row():
        lib["search"] = gr.Textbox(label="Search the library", scale=4, elem_id="library-search",
                                   placeholder="words of a title, outlet, date or id",
                                   max_length=FIELD_CHARS)
        lib["refresh"] = gr.Button("Refresh", scale=1)
    lib["count"] = gr.Markdown(app.library_count(), elem_id="library-count")
    lib["table"] = gr.Dataframe(
        value=app.library_rows(), headers=LIBRARY_COLUMNS,
        datatype=["str", "str", "str", "number", "str", "str"],
        column_widths=["38%", "11%", "13%", "8%", "18%", "12%"],
        interactive=False, wrap=True, elem_id="library-table",
    )
    lib["reader_note"] = gr.Markdown(
        "You can search the library and ask questions; only editors add or remove articles.",
        visible=False, elem_id="reader-note")
    mb = f"{app.settings.max_file_mb:g} MiB"
    with gr.Row():
        with gr.Column(scale=3) as lib["add_tools"]:
            gr.Markdown("### Add articles")
            with gr.Tabs():
                with gr.Tab("Upload"):
                    lib["files"] = gr.File(label=f"Files ({FORMATS}; at most {mb} each)",
                                           file_count="multiple", type="filepath",
                                           elem_id="upload")
                    lib["add_files"] = gr.Button("Add files", variant="primary",
                                                 elem_id="add-files")
                with gr.Tab("URL"):
                    lib["urls"] = gr.Textbox(
                        label=f"URLs, one a line (http or https; at most {app.settings.max_urls})",
                        lines=3, elem_id="urls")
                    lib["add_urls"] = gr.Button("Add URLs", variant="primary", elem_id="add-urls")
                with gr.Tab("Paste"):
                    lib["paste_title"] = gr.Textbox(
                        label="Headline (optional: else the first line is the headline)",
                        elem_id="paste-title", max_length=FIELD_CHARS)
                    lib["paste"] = gr.Textbox(label="Article text", lines=8, elem_id="paste",
                                              max_length=app.settings.max_paste_chars)
                    lib["add_text"] = gr.Button("Add text", variant="primary",
                                                elem_id="add-text")
            lib["outlet"] = gr.Textbox(label="Outlet (for articles that don't name one)",
                                       elem_id="outlet", max_length=FIELD_CHARS)
            lib["log"] = gr.Textbox(label="Ingest log", lines=6, max_lines=20,
                                    interactive=False, elem_id="ingest-log")
        with gr.Column(scale=2) as lib["remove_tools"]:
            gr.Markdown("### Remove an article")
            lib["pick"] = gr.Dropdown(app.article_choices(), value=None,
                                      label="Article (or click its row)", elem_id="remove-pick")
            lib["remove"] = gr.Button("Remove", variant="stop", elem_id="remove")
            lib["removed"] = gr.Markdown(elem_id="remove-result")
    return lib


def _wire_chat(app: NewsApp, c: dict[str, Any]) -> None:
    chat_io = {
        "fn": app.chat,
        "inputs": [c["question"], c["chatbot"], c["turns"], c["articles"], c["outlets"],
                   c["date_from"], c["date_to"], c["mode"]],
        "outputs": [c["chatbot"], c["turns"], c["question"], c["export"]],
        "concurrency_id": "answer",
        "concurrency_limit": app.settings.answer_concurrency,
    }
    asked = [c["question"].submit(**chat_io, api_name="chat"),
             c["ask"].click(**chat_io, api_visibility="private")]
    # Stop closes the answer's generator, which closes an LLM's connection (rag/llm.py).
    c["stop"].click(None, None, None, cancels=asked, api_visibility="private")

    def new_chat() -> tuple[Any, ...]:
        return [], [], gr.Button(interactive=False)

    c["new_chat"].click(new_chat, None, [c["chatbot"], c["turns"], c["export"]],
                        api_name="new_chat")
    c["chatbot"].clear(new_chat, None, [c["chatbot"], c["turns"], c["export"]],
                       api_visibility="private")  # the chat's own trash button

    def export_file(turns: list[dict[str, Any]] | None) -> Any:
        if not turns:
            raise gr.Error("Nothing to export yet: ask a question first.", print_exception=False)
        return app.export_file(turns)

    c["export"].click(export_file, c["turns"], c["export_file"], api_visibility="private").success(
        None, js="() => { const b = document.querySelector('#export-download'); "
                 "(b && (b.tagName === 'BUTTON' ? b : b.querySelector('button')))?.click(); }")


def _refresh_io(app: NewsApp, lib: dict[str, Any], c: dict[str, Any], banner: Any
                ) -> dict[str, Any]:
    return {"fn": app.library_updates, "inputs": [lib["search"], c["articles"], c["outlets"]],
            "outputs": [lib["table"], lib["count"], c["articles"], c["outlets"], lib["pick"],
                        banner], "show_progress": "hidden"}


def _wire_library(app: NewsApp, lib: dict[str, Any], c: dict[str, Any], banner: Any) -> None:
    refresh_io = _refresh_io(app, lib, c, banner)
    lib["refresh"].click(**refresh_io, api_visibility="private")
    lib["search"].change(app.search_library, lib["search"], [lib["table"], lib["count"]],
                         api_visibility="private", show_progress="hidden")

    def pick_row(evt: gr.SelectData) -> Any:
        row = evt.row_value or []
        return row[-1] if row else gr.skip()

    lib["table"].select(pick_row, None, lib["pick"], api_visibility="private")

    def add_files(paths: list[str] | None, outlet: str, request: gr.Request,
                  progress: gr.Progress = gr.Progress()) -> Iterator[str]:  # noqa: B008
        try:
            app.require_editor(request)
        except gr.Error:
            for p in paths or []:
                forget_gradio_upload(Path(p))
            raise
        names: dict[str, str] = {}
        refused: list[str] = []
        for p in paths or []:
            saved, name = app.save_upload(p)
            if saved is None:
                refused.append(f"failed     {name}: larger than the "
                               f"{app.settings.max_file_mb:g} MiB limit (RAG_MAX_FILE_MB)")
            else:
                names[saved] = name
        yield from app.ingest_stream(list(names), names, outlet, progress, refused=refused)

    def add_urls(text: str, outlet: str, request: gr.Request,
                 progress: gr.Progress = gr.Progress()) -> Iterator[str]:  # noqa: B008
        app.require_editor(request)
        refs = app.web_urls((text or "").split())
        yield from app.ingest_stream(refs, {}, outlet, progress, local=False)

    def add_text(text: str, title: str, outlet: str, request: gr.Request,
                 progress: gr.Progress = gr.Progress()) -> Iterator[str]:  # noqa: B008
        app.require_editor(request)
        ref = app.save_text(app.check_paste(text), title or "")
        yield from app.ingest_stream([ref], {ref: "pasted text"}, outlet, progress)

    def remove(article_id: str | None, request: gr.Request) -> str:
        app.require_editor(request)
        return app.remove(article_id)

    for button, fn, inputs, clear, name in (
        ("add_files", add_files, ["files", "outlet"], "files", "add_files"),
        ("add_urls", add_urls, ["urls", "outlet"], "urls", "add_urls_ui"),
        ("add_text", add_text, ["paste", "paste_title", "outlet"], "paste", "add_text_ui"),
    ):
        added = lib[button].click(fn, [lib[i] for i in inputs], lib["log"], api_name=name,
                                  concurrency_id="library", concurrency_limit=1)
        added.then(**refresh_io, api_visibility="private")
        # the input is cleared only once it was taken: a refused one stays to be fixed
        added.success(lambda: None, None, lib[clear], api_visibility="private")
    lib["remove"].click(remove, lib["pick"], lib["removed"], api_name="remove_ui",
                        concurrency_id="library", concurrency_limit=1).then(
        **refresh_io, api_visibility="private")


def _api(app: NewsApp) -> None:
    """The plain JSON API (gradio_client): the same operations without the widgets.
    Refusals (limits, roles) raise gr.Error, which the client sees as its message."""

    def ask(question: str, history: list[dict[str, Any]] | None = None,
            article_ids: list[str] | None = None, outlets: list[str] | None = None,
            date_from: str | None = None, date_to: str | None = None,
            mode: str | None = None) -> dict[str, Any]:
        """One answer as JSON (AnswerResult.to_json(), `path` named `file_path`).
        `history`: earlier turns as [{"role": "user"|"assistant", "content": ...}]."""
        try:
            question = app.check_question(question)
            turns = app.check_history(history)
            if not app._has_chunks():
                return {"question": question, "refused": True, "answer": "",
                        "notice": " ".join(EMPTY_LIBRARY.split()), "citations": [],
                        "sentences": [], "mode": app.engine.resolve_mode(mode or None)}
            filters = app.filters(article_ids, outlets, date_from, date_to)
            result = None
            for event in app.answer(question, turns, filters, mode):
                if isinstance(event, AnswerResult):
                    result = event
        except Exception as exc:
            line = app.error_line(exc, f"answering {str(question)[:200]!r}")
            raise gr.Error(line, print_exception=False) from None
        assert result is not None
        return api_json(result)

    def library(query: str = "") -> list[dict[str, Any]]:
        """The stored articles: title, published, outlet, chunks, source, id."""
        return [dict(zip(LIBRARY_KEYS, row, strict=True)) for row in app.library_rows(query)]

    def add_text(text: str, title: str = "", outlet: str = "",
                 request: gr.Request = None) -> dict[str, Any]:  # type: ignore[assignment]
        """Add pasted article text (editors); returns the ingest report."""
        app.require_editor(request)
        ref = app.save_text(app.check_paste(text), title or "")
        return app.run_ingest([ref], {ref: "pasted text"}, outlet or "")

    def add_urls(urls: list[str], outlet: str = "",
                 request: gr.Request = None) -> dict[str, Any]:  # type: ignore[assignment]
        """Add articles by http(s) URL (editors); returns the ingest report."""
        app.require_editor(request)
        return app.run_ingest(app.web_urls(list(urls or [])), {}, outlet or "", local=False)

    def remove(article_id: str,
               request: gr.Request = None) -> str:  # type: ignore[assignment]
        """Remove an article (and its chunks) by id (editors)."""
        app.require_editor(request)
        return app.remove(article_id)

    def export(turns: list[dict[str, Any]]) -> str:
        """Markdown of [{"question": ..., "result": <ask's answer>}, ...]."""
        turns = list(turns or [])
        if len(turns) > app.settings.max_history_turns + 1:
            raise gr.Error(f"{len(turns)} turns given; a conversation holds at most "
                           f"{app.settings.max_history_turns + 1} (RAG_MAX_HISTORY_TURNS)",
                           print_exception=False)
        if len(json.dumps(turns, default=str)) > EXPORT_CHARS:
            raise gr.Error(f"the turns are over {EXPORT_CHARS:,} characters as JSON",
                           print_exception=False)
        return render.conversation_markdown(turns)

    gr.api(ask, api_name="ask", concurrency_id="answer",
           concurrency_limit=app.settings.answer_concurrency)
    gr.api(library, api_name="library")
    for fn, name in ((add_text, "add_text"), (add_urls, "add_urls"), (remove, "remove")):
        gr.api(fn, api_name=name, concurrency_id="library", concurrency_limit=1)
    gr.api(export, api_name="export")


def launch(demo: gr.Blocks, host: str, port: int, users: dict[str, User] | None = None,
           settings: Settings | None = None, **kwargs: Any) -> Any:
    """Start the server (blocking unless prevent_thread_lock=True); warns when it is
    reachable from other machines without a login."""
    settings = settings or get_settings()
    warning = bind_warning(host, port, users is not None)
    if warning:
        logger.warning(warning)
    middleware = []
    if users:
        from starlette.middleware import Middleware

        throttle = LoginThrottle(settings.login_max_failures, settings.login_window)
        middleware.append(Middleware(LoginGuard, throttle=throttle))
    # A full queue is refused by gradio itself: the page says "This application is
    # currently busy. Please try again.", gradio_client "Queue is full! Please try again."
    demo = demo.queue(default_concurrency_limit=1, max_size=settings.queue_max)
    return demo.launch(
        server_name=host, server_port=port, auth=checker(users) if users else None,
        auth_message="News RAG: log in to ask questions of the library." if users else None,
        css=CSS, head=HEAD, footer_links=["api"], run_history=False, show_error=False,
        max_file_size=settings.max_file_bytes, app_kwargs={"middleware": middleware},
        **kwargs,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__.split("\n")[0])
    parser.add_argument("--host", help="address to bind (default: RAG_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: RAG_PORT or 7860)")
    parser.add_argument("--data-dir", help="store folder (default: RAG_DATA_DIR or ./data)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    update: dict[str, Any] = {}
    if args.host:
        update["host"] = args.host
    if args.port:
        update["port"] = args.port
    if args.data_dir:
        update["data_dir"] = Path(args.data_dir).expanduser().resolve()
    settings = get_settings().model_copy(update=update)
    started = time.perf_counter()
    try:
        users = load_users(settings.auth)
        FetchPolicy.from_settings(settings)  # a bad RAG_FETCH_ALLOW stops here, not per URL
        app = NewsApp(settings)
    except (StoreError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    logger.info("News RAG on %s (%.1f s to open)", app.store.location,
                time.perf_counter() - started)
    start(app, settings.host, settings.port, users)


def start(app: NewsApp, host: str, port: int, users: dict[str, User] | str | None = None,
          block: bool = True) -> gr.Blocks:
    """Warm the engine up in the background, build the page and serve it. With
    `block=False` (tests) it returns at once; `demo.close()` stops the server.
    `users`: as `load_users` gives them, or the RAG_AUTH value itself."""
    app.users = load_users(users) if isinstance(users, str) else users
    threading.Thread(target=app.warm_up, name="warm-up", daemon=True).start()
    demo = build(app)
    launch(demo, host, port, app.users, app.settings, prevent_thread_lock=not block,
           quiet=not block)
    return demo


if __name__ == "__main__":
    main()

"""The state one app process shares between sessions (one store, one engine), and the
operations the page and the API both call: answering, the library, adding, removing.

What a web user may do is narrower than what the CLI's user may (README, Safety): add
only http(s) URLs, uploads and pasted text, never server paths; every request is
bounded (`web.limits`); web users see source names, never server paths, and errors
as one line (details go to the log).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ingest.pipeline import ingest_stream
from ingest.results import STATUSES, Report
from rag.answer.engine import AnswerStream, EmptyLibrary, Engine
from rag.answer.request import Ask
from rag.answer.retrieve import Filters
from rag.errors import RagError, UsageError
from rag.records import StoredArticle
from rag.settings import Settings
from rag.store.articles import ArticleStore, StoreError
from rag.store.connection import as_store_error
from rag.store.lock import WriterBusyError, describe
from rag.streams import Streamed
from rag.types import Answer, AnswerMode
from web.auth import EDITOR, Asking, NotEditor, User, role_of
from web.catalog import Catalog
from web.feeds import Feeds
from web.limits import Limits
from web.uploads import Uploads

logger = logging.getLogger(__name__)
FORMATS = "txt, md, html, pdf, jsonl"
LIBRARY_SHOWN = 500  # rows of the library table and choices of its pickers, at most
HEALTH_SAMPLE = 200  # chunks whose vectors the start-up look checks
UNEXPECTED = "something went wrong on the server (the details are in its log)."
NO_MATCH = ("no passage matches the filters (articles, outlets, dates); clear them to search "
            "the whole library")
EMPTY_LIBRARY = (
    "Your library is empty, so there is nothing to answer from yet.\n"
    "Add articles in the Library tab: upload files (" + FORMATS + "), give a URL, or paste "
    "the text.\n"
    "Or from a terminal: python -m ingest PATH-OR-URL ..."
)


class UnknownFilter(UsageError):
    """A filter naming an article or outlet the library does not hold; the message is
    "<field>: <why>", `field` the request's name for it."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field


def _choices(articles: list[StoredArticle], ids: set[str]) -> list[tuple[str, str]]:
    """(label, id) of those of `articles` in `ids`, in the listing's order."""
    out = []
    for a in articles:
        if a.id in ids:
            when = f" ({a.published.isoformat()})" if a.published else ""
            out.append((f"{' '.join(a.title.split())[:90]}{when}", a.id))
    return out


class NewsApp:
    def __init__(self, settings: Settings, engine: Engine | None = None,
                 users: dict[str, User] | None = None) -> None:
        self.settings = settings
        self.engine = engine or Engine.from_settings(settings)
        self.store: ArticleStore = self.engine.store
        # A long-running process: answer from the keyword index it has while a thread
        # rebuilds it after a write, rather than make a question wait for the rebuild.
        self.engine.keyword.background = True
        self.users = users  # None: no login, whoever reaches the page edits
        self.limits = Limits(settings)
        self.uploads = Uploads(Path(settings.data_dir) / "uploads", settings.max_file_bytes)
        self.feeds = Feeds(self.store, self.limits)  # the feeds followed (web/feeds.py)
        self.catalog = Catalog(self.store)  # the article list the page shows
        self._warm_lock = threading.Lock()
        self._warm = False
        self.health_problems: list[str] = []  # from the start-up look at the store

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
            self._recover()
            self.store.embed_model  # noqa: B018 - loads the model
            self.engine.warm()  # the keyword index, a model reader's fixed prompt
            self._warm = True
            logger.info("Ready to answer (model and keyword index loaded in %.1f s)",
                        time.perf_counter() - started)
            for note in self.engine.setup_notes():
                logger.info("%s", note)

    def start_up(self, feeds: bool = False) -> None:
        """What a starting server runs in a thread of its own: `warm_up`, following the
        feeds (`feeds`: after the model is loaded, so one copy of it, not two), then
        `look_at_store` (last: SQLite's quick check of the database reads all of it,
        72 s for 8.5 GB, and questions need not wait for that)."""
        self.warm_up()
        if feeds:
            self.feeds.start()
        self.look_at_store()

    def _recover(self) -> None:
        """Roll back what a writer killed mid-write left (unless another process is
        writing now: it will)."""
        try:
            recovered = self.store.recover(wait=0)
            if recovered:
                logger.warning("rolled back %d article(s) left half-written by a writer that "
                               "died", recovered)
        except WriterBusyError:
            logger.info("another process is writing the store; it will recover it")

    def look_at_store(self) -> None:
        """The light part of `ingest check` (a sample of vectors, nothing that reads
        every chunk); problems are shown above the page's tabs."""
        from rag.store.health import check_store

        try:
            health = check_store(self.store, sample=HEALTH_SAMPLE, quick=True)
        except StoreError as exc:
            self.health_problems = [str(exc)]
        else:
            self.health_problems = health.problems()
        for problem in self.health_problems:
            logger.warning("store check: %s", problem)

    def mode_text(self) -> str:
        if self.engine.resolve_mode(None) == AnswerMode.LLM:
            llm = self.engine.llm()
            name = llm.model if llm is not None else self.settings.llm_model
            return (f"Answers are written by the LLM `{name}`; every sentence is checked "
                    "against the passages it cites.")
        return "Answers are **extractive**: sentences quoted from the articles."

    def setup_text(self) -> str:
        """Markdown for editors: which reader and which model answer on this server, and
        why not better ones, with what to do (`Engine.setup_notes`); data folder redacted."""
        return "\n".join(["#### This server", "",
                          *(f"- {self.redact(n)}" for n in self.engine.setup_notes())])

    def banner(self) -> str:
        """Markdown above the tabs: what is wrong with the store, if anything; how to add
        articles while the library is empty."""
        if self.health_problems:
            return "  \n".join(
                ["**The store needs a repair:** " + self.redact("; ".join(self.health_problems))
                 + ".", "Run `python -m ingest check --repair` on the server (answers may "
                 "miss passages until then)."])
        if self.store.has_chunks():
            return ""
        first, *rest = EMPTY_LIBRARY.splitlines()
        return "  \n".join([f"**{first}**", *rest])

    # -- who may do what; what they are told --------------------------------

    def role(self, request: Asking | None) -> str:
        return role_of(self.users, request.username if request is not None else None)

    def require_editor(self, request: Asking | None) -> None:
        if self.role(request) != EDITOR:
            raise NotEditor("Only editors may add or remove articles; you are logged in as "
                            "a reader.")

    def public(self, answer: Answer) -> Answer:
        """The answer with source names in place of server paths (chat, API, export)."""
        name = self.uploads.source_name
        return answer.model_copy(update={
            "citations": [c.model_copy(update={"path": name(c.path) or None})
                          for c in answer.citations],
            "retrieved": [r.model_copy(update={"path": name(r.path) or None})
                          for r in answer.retrieved],
        })

    def redact(self, text: str) -> str:
        """An error line without the server's data folder in it."""
        for where in {str(Path(self.settings.data_dir).resolve()), str(self.settings.data_dir)}:
            text = text.replace(where, "<data folder>")
        return text

    def error_line(self, exc: Exception, doing: str) -> str:
        """What a web user is told of a failure: our own one-line reasons (a `RagError`)
        without server paths; of anything else only that it happened, with the traceback
        in the server's log."""
        if isinstance(exc, StoreError):
            logger.warning("%s failed: %s", doing, exc)
        if isinstance(exc, RagError):
            return self.redact(str(exc))
        line = as_store_error(exc, self.settings, "answering")
        if line is not None:
            logger.error("%s failed: %s", doing, line, exc_info=exc)
            return self.redact(str(line))
        logger.error("%s failed", doing, exc_info=exc)
        return UNEXPECTED

    # -- answering ---------------------------------------------------------

    def article_text(self, article_id: str) -> str | None:
        article = self.store.get_article(article_id) if article_id else None
        return article.text if article else None

    def answer(self, request: Ask) -> AnswerStream:
        """The engine's stream, after warm-up; its answer with a hint when filters leave
        nothing, and source names in place of server paths. On an empty library, the
        answer says what the page says (`empty_answer`): the chat, /ask, /v1 and MCP all
        show the engine's one decision (`EmptyLibrary`) this way."""
        return Streamed(self._answer(request))

    def _answer(self, request: Ask) -> Generator[str, None, Answer]:
        self.warm_up()
        stream = self.engine.stream(replace(request, mode=request.mode or None))
        try:
            yield from stream
        except EmptyLibrary:
            return self.empty_answer(request.question, request.mode)
        answer = stream.result
        if request.filters and not answer.retrieved:
            answer = answer.with_notice(NO_MATCH)
        return self.public(answer)

    def is_empty_answer(self, answer: Answer) -> bool:
        """Whether this is the answer of an empty library (the chat shows it as a
        notice of its own, not as a refusal)."""
        return answer.refused and answer.answer == EMPTY_LIBRARY

    def empty_answer(self, question: str, mode: str | None) -> Answer:
        """The answer while the library is empty: the words the chat shows
        (EMPTY_LIBRARY) as its text, so an API client that prints the answer says what
        the page says, and how to add articles."""
        return Answer(question=question, standalone_question=question, answer=EMPTY_LIBRARY,
                      refused=True, mode=self.engine.resolve_mode(mode or None))

    # -- the library -------------------------------------------------------

    def articles(self) -> list[StoredArticle]:
        """Every stored article, newest first, current (waits for a listing: a large
        library's takes a minute; the page's parts below never wait)."""
        return self.catalog.articles(wait=True) or []

    def shown_articles(self) -> list[StoredArticle] | None:
        """What the page lists: the current articles, or a large library's last listing
        while a new one is under way, or None before its first (`web.catalog`)."""
        return self.catalog.articles()

    def library_rows(self, query: str = "", articles: list[StoredArticle] | None = None,
                     limit: int | None = None) -> list[list[Any]]:
        """Rows of the library table matching every word of `query`, newest first; at
        most `limit` (None: all)."""
        words = self.limits.field(query, "search").casefold().split()
        rows: list[list[Any]] = []
        for a in self.articles() if articles is None else articles:
            if limit is not None and len(rows) >= limit:
                break
            source = a.url or self.uploads.source_name(a.paths[0] if a.paths else "")
            if a.feed_summary:
                source += " (feed summary only)"
            row = [a.title, a.published.isoformat() if a.published else "", a.outlet or "",
                   a.chunks, source, a.id]
            haystack = " ".join(str(x) for x in row).casefold()
            if all(w in haystack for w in words):
                rows.append(row)
        return rows

    def library_view(self, query: str = "") -> tuple[list[list[Any]], str]:
        """The page's library table (at most `LIBRARY_SHOWN` rows: a browser is sent
        no more) and the line above it, from `shown_articles`."""
        rows, line, _, _ = self.library_page(query)
        return rows, line

    def library_page(self, query: str = "", keep: list[str] | None = None
                     ) -> tuple[list[list[Any]], str, list[tuple[str, str]], list[str]]:
        """The library table, its line, the article pickers' choices (`article_choices`)
        and the outlets, from one look at the listing and one pass over it."""
        articles = self.shown_articles()
        rows = self.library_rows(query, articles or [], limit=LIBRARY_SHOWN + 1)
        shown = rows[:LIBRARY_SHOWN]
        choices = _choices(articles or [], {r[-1] for r in shown} | set(keep or []))
        return (shown, self._count_line(query, articles, rows), choices,
                self.outlet_choices(articles or []))

    def _count_line(self, query: str, articles: list[StoredArticle] | None,
                    rows: list[list[Any]]) -> str:
        held, chunks = self.store.counts()
        total = f"{held} article(s), {chunks} passage(s)"
        if articles is None:
            return f"{total} · listing them (a large library takes a minute): Refresh soon"
        more = len(rows) > LIBRARY_SHOWN
        if more:
            what = "matching" if query.strip() else "in all"
            shown = (f"the newest {LIBRARY_SHOWN} {what} shown (search to find others) · ")
        else:
            shown = f"{len(rows)} of {len(articles)} shown · " if query.strip() else ""
        stale = " · a newer listing is under way" if self.catalog.stale else ""
        return f"{shown}{total}{stale}"

    def article_choices(self, query: str = "", keep: list[str] | None = None
                        ) -> list[tuple[str, str]]:
        """The article filter's and the remove picker's choices: the newest
        `LIBRARY_SHOWN` matching the library search, and those in `keep` (picked)."""
        return self.library_page(query, keep)[2]

    def outlet_choices(self, articles: list[StoredArticle] | None = None) -> list[str]:
        articles = (self.shown_articles() or []) if articles is None else articles
        return sorted({a.outlet for a in articles if a.outlet}, key=str.casefold)

    def held_filters(self, filters: Filters) -> Filters:
        """`filters` with outlets as the library spells them (a client's "bbc" finds
        "BBC"); articles and outlets the library does not hold are named
        (`UnknownFilter`), not searched for. For the API clients (/v1, MCP), whose
        filters are typed, not picked from the library's lists as the page's are."""
        if not filters.article_ids and not filters.outlets:
            return filters
        held = {a.id for a in self.store.get_articles(filters.article_ids)}
        missing = [i for i in filters.article_ids if i not in held]
        if missing:
            raise UnknownFilter("article_ids", f"the library has no article {missing[0]!r}"
                                + (f" (and {len(missing) - 1} more)" if missing[1:] else ""))
        if not filters.outlets:
            return filters
        known = {o.casefold(): o for o in self.outlet_choices(self.articles())}
        unknown = [o for o in filters.outlets if o.casefold() not in known]
        if unknown:
            raise UnknownFilter("outlets", f"no article in the library is from {unknown[0]!r}")
        return replace(filters, outlets=[known[o.casefold()] for o in filters.outlets])

    # -- adding and removing -------------------------------------------------

    def save_text(self, text: str, title: str = "") -> str:
        """Pasted text (checked) as our own .txt copy."""
        self.limits.field(title, "headline")
        return self.uploads.save_text(self.limits.paste(text), title)

    def ingest(self, refs: list[str], names: dict[str, str], outlet: str = "", *,
               local: bool = True) -> Streamed[str, dict[str, Any]]:
        """Ingest with the pipeline the CLI uses: a log line per result (CLI wording) as
        it comes, then the report as the API gives it. `local=False`: the refs are URLs
        a web user gave, never read as server paths. Closing the stream stops the ingest
        between sources."""
        return Streamed(self._ingest(refs, names, outlet, local))

    def run_ingest(self, refs: list[str], names: dict[str, str], outlet: str = "", *,
                   local: bool = True) -> dict[str, Any]:
        return self.ingest(refs, names, outlet, local=local).result

    def ingest_reports(self, refs: list[str], names: dict[str, str], outlet: str = "", *,
                       local: bool = True) -> Iterator[dict[str, Any]]:
        """The report so far after each result (`done` false), then the whole report
        (`done` true). For the API: a client that cancels closes this generator, which
        stops the ingest before its next source instead of writing on unseen."""
        stream = self.ingest(refs, names, outlet, local=local)
        lines: list[str] = []
        try:
            for line in stream:
                lines.append(line)
                yield {"summary": f"{len(lines)} result(s) so far…", "lines": list(lines),
                       "counts": {}, "results": [], "done": False}
            yield {**stream.result, "done": True}
        finally:
            stream.close()

    def _ingest(self, refs: list[str], names: dict[str, str], outlet: str, local: bool
                ) -> Generator[str, None, dict[str, Any]]:
        self.limits.field(outlet, "outlet")

        def shown(source: str) -> str:
            for ref, name in names.items():
                source = source.replace(ref, name)
            return self.redact(source)

        self.warm_up()
        lines: list[str] = []
        holder = self.store.lock.current()
        if holder is not None:  # said now: the stream can only yield once it has the lock
            lines.append(self.redact(f"waiting for {describe(holder)} to finish writing…"))
            yield lines[-1]
        stream = ingest_stream(refs, self.store, self.settings, outlet=outlet.strip() or None,
                               progress=False, local=local, pool_chunks=1,
                               on_wait=lambda line: logger.info("%s", line))
        for result in stream:
            line = (f"failed     {shown(result.source)}: {result.reason}"
                    if result.status == "failed" else shown(result.line()))
            lines.append(line)
            yield line
        report: Report = stream.result
        self._forget_failed_uploads(refs, report)
        if self.store.has_chunks():
            self.engine.keyword.ensure()  # starts the rebuild, so questions need not wait
        return {
            "summary": shown(report.summary()),
            "lines": lines,
            "counts": {s: report.count(s) for s in STATUSES},
            "results": [{**asdict(r), "source": shown(r.source)} for r in report.results],
        }

    def ingest_log(self, refs: list[str], names: dict[str, str], outlet: str,
                   progress: Callable[..., Any] | None = None, *, local: bool = True,
                   refused: list[str] | None = None) -> Iterator[str]:
        """The log so far, as results arrive. `refused`: lines for sources refused before
        ingest (e.g. uploads over the limit)."""
        log: list[str] = list(refused or [])
        if not refs:
            log.append("Nothing to add." if not log else f"added 0, failed {len(log)}")
            yield "\n".join(log)
            return
        log.append(f"adding {len(refs)} source(s)…")
        yield "\n".join(log)
        stream = self.ingest(refs, names, outlet, local=local)
        try:
            for done, line in enumerate(stream, 1):
                log.append(line)
                if progress is not None:
                    progress((min(done, len(refs)), len(refs)), desc="ingesting",
                             unit="sources")
                yield "\n".join(log)
            log.append(stream.result["summary"])
        except Exception as exc:  # a broken store: say so instead of hanging the UI
            log.append("ingest stopped: " + self.error_line(
                exc, f"ingest of {len(refs)} source(s)"))
        yield "\n".join(log)

    def _forget_failed_uploads(self, refs: list[str], report: Report) -> None:
        """Drop our copy of an upload that gave no article (the log says why)."""
        for ref in refs:
            kept = any(r.status != "failed" and (r.source == ref or r.source.startswith(ref + ":"))
                       for r in report.results)
            if not kept:
                self.uploads.delete(ref, self._paths_held)

    def _paths_held(self) -> list[str]:
        return [p for a in self.articles() for p in a.paths]

    def remove(self, article_id: str | None) -> str:
        if not article_id:
            return "Pick an article to remove."
        self.limits.field(article_id, "article id")
        with self.store.writing("remove", self.settings.write_wait):
            article = self.store.get_article(article_id)
            if article is None or not self.store.remove_article(article_id):
                return f"No article with id {article_id}."
        for path in article.paths:  # our own copies of uploads and pasted text
            self.uploads.delete(path, self._paths_held)
        if self.store.has_chunks():
            self.engine.keyword.ensure()
        return f"Removed {article.id}: {' '.join(article.title.split())}"

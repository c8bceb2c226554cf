"""What one web request may carry, checked before any work is done on it.

The user-facing bounds are settings (RAG_MAX_QUESTION_CHARS, RAG_MAX_PASTE_CHARS,
RAG_MAX_URLS, RAG_MAX_HISTORY_TURNS); the rest are far above any real use and only
stop abuse. A refusal is one line that says the limit and, where there is one, the
setting (a `UsageError`: the page shows it as it is, an API client gets it as a 400).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from ingest.sources import is_url
from rag.answer.retrieve import Filters
from rag.errors import UsageError
from rag.settings import Settings

HISTORY_TURN_CHARS = 20_000  # an answer with its [n] markers is a few thousand at most
FIELD_CHARS = 1000  # a headline, outlet, search or id: far above any real one
URL_CHARS = 2048  # what browsers and servers commonly accept
FILTER_ITEMS = 1000  # articles or outlets picked as a filter
EXPORT_CHARS = 2_000_000  # the turns /export takes, as JSON: ~100 times a long conversation


class Limits:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def question(self, question: str | None) -> str:
        """The question with its whitespace collapsed, refused over the length limit (raw
        text over four times the limit is refused before any work on it)."""
        limit = self.settings.max_question_chars
        question = question or ""
        if len(question) <= limit * 4:
            question = " ".join(question.split())
        if len(question) > limit:
            raise UsageError(f"the question is {len(question):,} characters long; the limit is "
                             f"{limit:,} (RAG_MAX_QUESTION_CHARS)")
        return question

    def history(self, history: Any) -> list[dict[str, Any]]:
        """The API's `history`, refused when it is not turns or longer than the limit."""
        history = list(history or [])
        if not all(isinstance(t, dict) and isinstance(t.get("content", ""), str)
                   for t in history):
            raise UsageError('history must be a list of {"role": ..., "content": ...} objects')
        limit = self.settings.max_history_turns
        asked = sum(1 for t in history if t.get("role", "user") == "user")
        if asked > limit or len(history) > 2 * limit + 1:
            raise UsageError(f"the history holds {asked} questions; the limit is {limit} "
                             "(RAG_MAX_HISTORY_TURNS): start a new conversation")
        longest = max((len(t.get("content", "")) for t in history), default=0)
        if longest > HISTORY_TURN_CHARS:
            raise UsageError(f"a history turn is {longest:,} characters long; the limit is "
                             f"{HISTORY_TURN_CHARS:,}")
        return history

    def paste(self, text: str | None) -> str:
        text = text or ""
        if not text.strip():
            raise UsageError("Paste the article's text first.")
        limit = self.settings.max_paste_chars
        if len(text) > limit:
            raise UsageError(f"The pasted text is {len(text):,} characters long; the limit is "
                             f"{limit:,} (RAG_MAX_PASTE_CHARS). Upload it as a file instead.")
        return text

    def field(self, value: str | None, what: str, limit: int = FIELD_CHARS) -> str:
        """A short field (headline, outlet, search, id, URL), refused over its limit."""
        value = value or ""
        if len(value) > limit:
            raise UsageError(f"The {what} is {len(value):,} characters long; the limit is "
                             f"{limit:,}.")
        return value

    def urls(self, urls: list[str]) -> list[str]:
        """The URLs a web user asked for: http(s) only, never server paths or stdin."""
        urls = [u.strip() for u in urls if u and u.strip()]
        if not urls:
            raise UsageError("Give at least one http:// or https:// URL.")
        bad = [u for u in urls if not is_web_url(u)]
        if bad:
            shown = ", ".join(repr(b[:80]) for b in bad[:3]) + (" …" if len(bad) > 3 else "")
            raise UsageError(f"Only http:// and https:// URLs can be added here (not {shown}); "
                             "upload files instead.")
        if len(urls) > self.settings.max_urls:
            raise UsageError(f"{len(urls)} URLs given; the limit is {self.settings.max_urls} a "
                             "request (RAG_MAX_URLS).")
        for url in urls:
            self.field(url, "URL", URL_CHARS)
        return urls

    def day(self, value: Any, what: str) -> date | None:  # noqa: ANN401
        """A day given by a client (YYYY-MM-DD), or None."""
        if value is not None and len(str(value)) > 40:
            raise UsageError(f"{what} is not a date (use YYYY-MM-DD)")
        try:
            return parse_date(value)
        except ValueError as exc:
            raise UsageError(f"{what}: {exc}") from None

    def filters(self, article_ids: list[str] | None, outlets: list[str] | None,
                date_from: Any, date_to: Any) -> Filters:
        for what, items in (("articles", article_ids), ("outlets", outlets)):
            if len(items or []) > FILTER_ITEMS or any(len(str(i)) > FIELD_CHARS
                                                      for i in items or []):
                raise UsageError(f"the {what} filter is too large (at most {FILTER_ITEMS} "
                                 f"items of {FIELD_CHARS:,} characters)")
        start, end = parse_date(date_from), parse_date(date_to)
        if start and end and start > end:
            raise UsageError(f"the date range is empty: {start} is after {end}")
        return Filters(article_ids=list(article_ids or []), outlets=list(outlets or []),
                       date_from=start, date_to=end)


def is_web_url(ref: str) -> bool:
    """An http(s) URL, as ingest reads it, that also names a host."""
    ref = ref.strip()
    return is_url(ref) and bool(urlsplit(ref).hostname)


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
        raise UsageError(f"not a date: {text!r} (use YYYY-MM-DD)") from None

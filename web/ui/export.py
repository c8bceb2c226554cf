"""A conversation as a Markdown file: what the Export button and the `/export` API give.

The turns may come from an API client, so they are validated into `rag.types.Turn`
first (a malformed one is refused with the field that is wrong), and every text in
them is escaped as below.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import ValidationError

from rag.errors import UsageError
from rag.types import Turn
from web.ui.render import mode_label, one_line

# The export is opened in Markdown viewers, which render links, images and raw HTML:
# text from an article, a question or a model must stay text there. So every piece
# of it is one line, HTML-escaped (no tag or entity can form) and has each character
# CommonMark treats as markup backslash-escaped (no link, image, emphasis, code span,
# table cell or strikethrough); a piece that starts a line cannot open a heading,
# list, quote, fence or rule either. Readable punctuation (`.`, `?`, `'`, `(`, `:`)
# is left alone: without an unescaped `[`/`]`, brackets and parentheses make nothing.

_MD_ACTIVE = re.compile(r"([\\`*_\[\]#|~])")  # `<`, `>`, `&` become entities instead
_MD_LINE_START = re.compile(r"^(\d{1,9})([.)])|^([-+=])")  # list items, rules, setext
# A URL in an autolink (`<...>`) cannot be escaped, only percent-encoded: everything but
# the unreserved and reserved characters (and `%`) is encoded, `'` too; never `<`, `>`,
# spaces, quotes or backticks remain, so the autolink cannot be closed or left early.
_URL_SAFE = "-._~:/?#[]@!$&()*+,;=%"


def _md(value: object) -> str:
    """Text for Markdown that shows exactly its characters in any viewer (see above)."""
    text = one_line(value).replace("\x00", "\ufffd")  # what CommonMark makes of NUL
    text = html.escape(text, quote=False)
    text = _MD_ACTIVE.sub(r"\\\1", text)
    return _MD_LINE_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", text)


def _md_url(value: object) -> str | None:
    """An http(s) URL percent-encoded for an autolink, or None for any other scheme
    (javascript:, data:, ...) so that it is never made a link."""
    url = one_line(value)
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    encoded = quote(urlunsplit(parts), safe=_URL_SAFE)
    return re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", encoded)  # a stray % is a literal one


def _md_code(value: object) -> str:
    """A code span that cannot be closed early: its backtick fence is longer than any run
    of backticks inside, with the padding CommonMark strips again where one is needed.
    The content is HTML-escaped too, so the file never holds a raw tag."""
    text = html.escape(one_line(value), quote=False)
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


class ExportError(UsageError):
    """Turns that are not a conversation; the message names the field."""


def turns_of(turns: Iterable[Turn | Mapping[str, Any]]) -> list[Turn]:
    """The turns validated (`{"question", "result"}` dicts, as the app keeps and the API
    takes them), or ExportError saying which field of which turn is wrong."""
    out = []
    for i, turn in enumerate(turns, 1):
        try:
            out.append(turn if isinstance(turn, Turn) else Turn.model_validate(turn))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(x) for x in error["loc"])
            raise ExportError(f"turn {i} is not a question and its answer: {where}: "
                              f"{error['msg']}") from None
    return out


def conversation_markdown(turns: Iterable[Turn | Mapping[str, Any]], title: str = "News RAG",
                          now: datetime | None = None) -> str:
    """Each turn as Markdown: the question, the answer with its [n] markers and flags,
    the mode, and the numbered sources with the quoted span and its offsets. Every text
    field is escaped (see `_md`)."""
    now = now or datetime.now(UTC)
    lines = [f"# {_md(title)} conversation", "",
             f"Exported {now.strftime('%Y-%m-%d %H:%M UTC')}.", ""]
    for i, turn in enumerate(turns_of(turns), 1):
        result = turn.result
        lines += [f"## {i}. {_md(turn.question)}", ""]
        if result.clarify:
            lines.append("Which story do you mean? The articles cover:")
            lines.append("")
            lines += [f"- {_md(c.title) or '(untitled)'}"
                      + (f" ({_md(c.published)})" if c.published else "") for c in result.clarify]
        elif result.refused or not result.sentences:
            lines.append(_md(result.answer))
        elif result.timeline:
            for event, s in zip(result.timeline, result.sentences, strict=False):
                marks = "".join(f"[{n}]" for n in s.citations)
                when = _md(event.date_text or event.date) + (" (before)" if event.before else "")
                lines.append(f"- **{when}**: {_md(s.text)} {marks}".rstrip())
        else:
            out = []
            for s in result.sentences:
                marks = "".join(f"[{n}]" for n in s.citations)
                text = _md(s.text) + (f" {marks}" if marks else "")
                if not s.supported:
                    text += " *(⚠ unsupported)*"
                out.append(text)
            lines.append(" ".join(out))
        lines.append("")
        if result.date_filter is not None:
            f = result.date_filter
            lines += [f"Searched passages about {_md(f.text)} (from “{_md(f.phrase)}”, read "
                      f"{_md(f.anchor_note)}).", ""]
        if result.notice:
            lines += [f"Note: {_md(result.notice)}", ""]
        lines += [f"*Mode: {_md(mode_label(result))}*", ""]
        if result.citations:
            lines += ["Sources:", ""]
            for c in result.citations:
                about = f"about {_md(c.event_text)}" if c.event_text else ""
                meta = [x for x in (_md(c.outlet), _md(c.published), about) if x]
                link = _md_url(c.url) if c.url else None
                where = (f"<{link}>" if link else _md(c.url) if c.url else _md_code(c.path))
                head = f"{c.n}. **{_md(c.title) or '(untitled)'}**"
                if meta:
                    head += " — " + ", ".join(meta)
                if where:
                    head += f" — {where}"
                head += f" — characters {c.start}–{c.end}"
                lines += [head, f"   > {_md(c.quote)}"]
                if c.also_in:
                    lines.append(f"   Also in {len(c.also_in)} other article(s): " + "; ".join(
                        f"{_md(r.title) or '(untitled)'}"
                        + (f" ({_md(r.outlet)}, {_md(r.published)})" if r.outlet else "")
                        for r in c.also_in))
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"

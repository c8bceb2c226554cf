"""An `AnswerResult` as safe HTML (the chat) and as Markdown (the export).

Everything that comes from an article, a question or a model is escaped here, and
nowhere else is it turned into markup: an article whose title or text holds
`<script>` or `<img onerror=...>` shows those characters and runs nothing.

HTML shape of an answer (ids carry a per-answer prefix so two answers never clash):

    <div class="rag-answer">
      <p class="rag-text"><span class="rag-sent">Sentence.<sup class="rag-refs">
        <a class="rag-cite" href="#P-src-1">[1]</a></sup></span> ...</p>
      <p class="rag-meta">mode</p>
      <div class="rag-sources"><details class="rag-source" id="P-src-1">
        <summary>[1] title · outlet · date · link</summary>
        <blockquote class="rag-passage">…before <mark>supporting span</mark> after…</blockquote>
      </details></div>
    </div>

A footnote link's `href` names its source's `<details>`; the app's small script opens
it and scrolls to it (without the script the browser still scrolls there).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

CONTEXT_CHARS = 300  # characters of article text shown around a cited span, in all
TextLookup = Callable[[str], str | None]  # article id -> the article's stored text


def esc(value: object) -> str:
    """Text to HTML text (quotes too, so it is safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def _one_line(value: object) -> str:
    return " ".join(str(value or "").split())


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a dataclass or of its `to_json()` dict: both shapes are rendered."""
    if isinstance(obj, Mapping):
        if name == "path" and "path" not in obj:  # the app's API names it file_path
            return obj.get("file_path", default)
        return obj.get(name, default)
    return getattr(obj, name, default)


# -- passages ---------------------------------------------------------------


@dataclass
class Snippet:
    """A cited span with some of the article around it."""

    before: str
    span: str
    after: str
    cut_before: bool = False  # text was left out before `before`
    cut_after: bool = False
    exact: bool = True  # the span was found at its recorded offsets

    def html(self) -> str:
        lead = "…" if self.cut_before else ""
        tail = "…" if self.cut_after else ""
        return (f"{lead}{esc(self.before)}<mark>{esc(self.span)}</mark>"
                f"{esc(self.after)}{tail}")


def passage_context(text: str | None, start: int, end: int, quote: str = "",
                    width: int = CONTEXT_CHARS) -> Snippet:
    """The span `text[start:end]` with about `width` characters of context around it,
    cut at word boundaries. When the offsets no longer match the quote (the article
    changed since the answer) the quote is looked up; failing that, it stands alone."""
    text = text or ""
    valid = 0 <= start < end <= len(text)
    if not valid or (quote and text[start:end] != quote):
        found = text.find(quote) if quote else -1
        if found < 0:
            return Snippet("", quote or "", "", exact=False)
        start, end = found, found + len(quote)
    side = max((width - (end - start) + 1) // 2, 60)  # a long span still gets some context
    a = max(start - side, 0)
    b = min(end + side, len(text))
    if a > 0:  # start at the next word, not mid-word
        space = re.search(r"\s", text[a:start])
        a = a + space.end() if space else a
    if b < len(text):  # end after the last whole word
        spaces = [m.start() for m in re.finditer(r"\s", text[end:b])]
        b = end + spaces[-1] if spaces else b
    before = text[a:start]
    after = text[end:b]
    return Snippet(before, text[start:end], after, cut_before=a > 0, cut_after=b < len(text))


# -- pieces of an answer ----------------------------------------------------


def anchor(prefix: str, n: int) -> str:
    return f"{prefix}-src-{n}"


def safe_prefix(value: str) -> str:
    """An id prefix made of letters, digits and dashes only."""
    cleaned = re.sub(r"[^A-Za-z0-9-]", "-", value or "")
    return cleaned if cleaned[:1].isalpha() else f"a{cleaned}"


def _link(url: str | None, path: str | None) -> str:
    if url:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc:
            label = parts.netloc + (parts.path if len(parts.path) > 1 else "")
            if len(label) > 60:
                label = label[:57] + "…"
            return (f'<a class="rag-link" href="{esc(url)}" target="_blank" '
                    f'rel="noopener noreferrer nofollow">{esc(label)}</a>')
        return f'<span class="rag-link">{esc(url)}</span>'
    if path:
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        return f'<span class="rag-file" title="{esc(path)}">file: <code>{esc(name)}</code></span>'
    return ""


def mode_label(result: Any) -> str:
    mode, model = _get(result, "mode", ""), _get(result, "model")
    if mode == "llm":
        return f"LLM: {model}" if model else "LLM"
    return "extractive (sentences quoted from the articles)"


def source_html(citation: Any, prefix: str, lookup: TextLookup | None = None) -> str:
    n = int(_get(citation, "n"))
    start, end = int(_get(citation, "start", 0)), int(_get(citation, "end", 0))
    quote = _get(citation, "quote", "") or ""
    text = lookup(_get(citation, "article_id", "")) if lookup else None
    snippet = passage_context(text, start, end, quote)
    byline = [x for x in (_one_line(_get(citation, "outlet")),
                          _one_line(_get(citation, "published"))) if x]
    link = _link(_get(citation, "url"), _get(citation, "path"))
    where = (f"characters {start}–{end} of the article" if snippet.exact
             else "the passage as quoted (the article has changed or was removed)")
    path, url = _get(citation, "path"), _get(citation, "url")
    if path and not url:
        where += f" · {path}"
    parts = [
        f'<details class="rag-source" id="{esc(anchor(prefix, n))}">',
        f'<summary><span class="rag-n">[{n}]</span> '
        f'<span class="rag-title">{esc(_one_line(_get(citation, "title")) or "(untitled)")}'
        "</span>",
    ]
    if byline:
        parts.append(f' <span class="rag-byline">· {esc(" · ".join(byline))}</span>')
    if link:
        parts.append(f" · {link}")
    parts += [
        "</summary>",
        f'<blockquote class="rag-passage">{snippet.html()}</blockquote>',
        f'<div class="rag-span">{esc(where)}</div>',
        "</details>",
    ]
    return "".join(parts)


def _sentence_html(sentence: Any, prefix: str, titles: dict[int, str]) -> str:
    refs = "".join(
        f'<a class="rag-cite" href="#{esc(anchor(prefix, n))}" '
        f'title="{esc(titles.get(n, f"source {n}"))}">[{n}]</a>'
        for n in _get(sentence, "citations", []) or []
    )
    body = esc(_get(sentence, "text", ""))
    if refs:
        body += f'<sup class="rag-refs">{refs}</sup>'
    if _get(sentence, "supported", False):
        return f'<span class="rag-sent">{body}</span>'
    why = ("no citation" if not _get(sentence, "citations") else
           f"the cited passage does not support it (support {_get(sentence, 'score', 0):.2f})")
    return (f'<span class="rag-sent rag-unsupported" title="Unsupported: {esc(why)}">{body}'
            f' <span class="rag-flag">⚠ unsupported</span></span>')


def answer_html(result: Any, prefix: str = "a", lookup: TextLookup | None = None) -> str:
    """The final answer: sentences with footnotes, flags, mode and sources."""
    prefix = safe_prefix(prefix)
    citations = list(_get(result, "citations", []) or [])
    sentences = list(_get(result, "sentences", []) or [])
    titles = {int(_get(c, "n")): _one_line(_get(c, "title")) for c in citations}
    parts = ['<div class="rag-answer">']
    if _get(result, "refused", False) or not sentences:
        parts.append(f'<p class="rag-text rag-refused">{esc(_get(result, "answer", ""))}</p>')
    else:
        body = " ".join(_sentence_html(s, prefix, titles) for s in sentences)
        parts.append(f'<p class="rag-text">{body}</p>')
        unsupported = sum(1 for s in sentences if not _get(s, "supported", False))
        if unsupported:
            parts.append(f'<p class="rag-warning">⚠ {unsupported} of {len(sentences)} '
                         "sentences are not supported by the passages they cite.</p>")
    notice = _get(result, "notice", "")
    if notice:
        parts.append(f'<p class="rag-notice">Note: {esc(notice)}</p>')
    total = (_get(result, "timings_ms", {}) or {}).get("total")
    timing = f" · {total / 1000:.1f} s" if isinstance(total, int | float) else ""
    parts.append(f'<p class="rag-meta">Mode: <span class="rag-mode">'
                 f'{esc(mode_label(result))}</span>{esc(timing)}</p>')
    if citations:
        parts.append('<div class="rag-sources"><div class="rag-sources-title">Sources</div>')
        parts += [source_html(c, prefix, lookup) for c in citations]
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def streaming_html(text: str) -> str:
    """Text as it is written (LLM deltas carry the model's own [n] numbering)."""
    body = esc(text.strip()) if text.strip() else "Searching the articles…"
    return (f'<div class="rag-answer rag-pending"><p class="rag-text">{body}</p>'
            '<p class="rag-meta">writing…</p></div>')


def message_html(text: str, kind: str = "info") -> str:
    """A plain message in the chat (empty library, errors): escaped, one paragraph per line."""
    paragraphs = "".join(f"<p>{esc(line)}</p>" for line in text.splitlines() if line.strip())
    return f'<div class="rag-answer rag-{esc(kind)}">{paragraphs}</div>'


def question_html(question: str) -> str:
    return f'<span class="rag-question">{esc(question)}</span>'


# -- export -----------------------------------------------------------------
#
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
    text = _one_line(value).replace("\x00", "\ufffd")  # what CommonMark makes of NUL
    text = html.escape(text, quote=False)
    text = _MD_ACTIVE.sub(r"\\\1", text)
    return _MD_LINE_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", text)


def _md_url(value: object) -> str | None:
    """An http(s) URL percent-encoded for an autolink, or None for any other scheme
    (javascript:, data:, ...) so that it is never made a link."""
    url = _one_line(value)
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
    text = html.escape(_one_line(value), quote=False)
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_number(value: object) -> str:
    """A citation number or offset: an int as digits, anything else (API input) as text."""
    try:
        return str(int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return _md(value)


def conversation_markdown(turns: Iterable[Mapping[str, Any]], title: str = "News RAG",
                          now: datetime | None = None) -> str:
    """Each turn (`{"question", "result"}`, result as `AnswerResult.to_json()`) as
    Markdown: the question, the answer with its [n] markers and flags, the mode, and
    the numbered sources with the quoted span and its offsets. Turns may come from an
    API client, so every field, numbers included, is escaped (see `_md`)."""
    now = now or datetime.now(UTC)
    lines = [f"# {_md(title)} conversation", "",
             f"Exported {now.strftime('%Y-%m-%d %H:%M UTC')}.", ""]
    for i, turn in enumerate(turns, 1):
        result = turn.get("result") or {}
        lines += [f"## {i}. {_md(turn.get('question', ''))}", ""]
        sentences = _get(result, "sentences", []) or []
        if _get(result, "refused", False) or not sentences:
            lines.append(_md(_get(result, "answer", "")))
        else:
            out = []
            for s in sentences:
                marks = "".join(f"[{_md_number(n)}]" for n in _get(s, "citations", []) or [])
                text = _md(_get(s, "text", "")) + (f" {marks}" if marks else "")
                if not _get(s, "supported", False):
                    text += " *(⚠ unsupported)*"
                out.append(text)
            lines.append(" ".join(out))
        lines.append("")
        if _get(result, "notice"):
            lines += [f"Note: {_md(_get(result, 'notice'))}", ""]
        lines += [f"*Mode: {_md(mode_label(result))}*", ""]
        citations = _get(result, "citations", []) or []
        if citations:
            lines += ["Sources:", ""]
            for c in citations:
                meta = [x for x in (_md(_get(c, "outlet")), _md(_get(c, "published"))) if x]
                url, path = _get(c, "url"), _get(c, "path")
                link = _md_url(url) if url else None
                where = (f"<{link}>" if link else _md(url) if url else _md_code(path))
                head = f"{_md_number(_get(c, 'n'))}. **{_md(_get(c, 'title')) or '(untitled)'}**"
                if meta:
                    head += " — " + ", ".join(meta)
                if where:
                    head += f" — {where}"
                head += (f" — characters {_md_number(_get(c, 'start'))}–"
                         f"{_md_number(_get(c, 'end'))}")
                lines += [head, f"   > {_md(_get(c, 'quote', ''))}", ""]
    return "\n".join(lines).rstrip() + "\n"


def engine_history(turns: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The conversation as the engine takes it: user questions (with the standalone
    form the engine made of them) and plain answer text."""
    history: list[dict[str, str]] = []
    for turn in turns:
        result = turn.get("result") or {}
        user = {"role": "user", "content": str(turn.get("question", ""))}
        if _get(result, "standalone_question"):  # chains follow-ups of follow-ups
            user["standalone"] = str(_get(result, "standalone_question"))
        history.append(user)
        answer = _get(result, "answer", "")
        if answer:
            history.append({"role": "assistant", "content": str(answer)})
    return history

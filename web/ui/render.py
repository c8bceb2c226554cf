"""An `Answer` as safe HTML for the chat (the Markdown export is `web.ui.export`).

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
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from rag.types import Answer, AnswerMode, AnswerSentence, Citation

CONTEXT_CHARS = 300  # characters of article text shown around a cited span, in all
TextLookup = Callable[[str], str | None]  # article id -> the article's stored text


def esc(value: object) -> str:
    """Text to HTML text (quotes too, so it is safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def one_line(value: object) -> str:
    return " ".join(str(value or "").split())


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


def mode_label(result: Answer) -> str:
    if result.mode == AnswerMode.LLM:
        return f"LLM: {result.model}" if result.model else "LLM"
    return "extractive (sentences quoted from the articles)"


def source_html(citation: Citation, prefix: str, lookup: TextLookup | None = None) -> str:
    n = citation.n
    start, end = citation.start, citation.end
    quote = citation.quote or ""
    text = lookup(citation.article_id) if lookup else None
    snippet = passage_context(text, start, end, quote)
    about = f"about {citation.event_text}" if citation.event_text else ""
    byline = [x for x in (one_line(citation.outlet),
                          one_line(citation.published), about) if x]
    link = _link(citation.url, citation.path)
    where = (f"characters {start}–{end} of the article" if snippet.exact
             else "the passage as quoted (the article has changed or was removed)")
    path, url = citation.path, citation.url
    if path and not url:
        where += f" · {path}"
    parts = [
        f'<details class="rag-source" id="{esc(anchor(prefix, n))}">',
        f'<summary><span class="rag-n">[{n}]</span> '
        f'<span class="rag-title">{esc(one_line(citation.title) or "(untitled)")}'
        "</span>",
    ]
    if byline:
        parts.append(f' <span class="rag-byline">· {esc(" · ".join(byline))}</span>')
    if link:
        parts.append(f" · {link}")
    if citation.also_in:
        parts.append(f' <span class="rag-also">· also in {len(citation.also_in)} other '
                     f'article{"s" if len(citation.also_in) > 1 else ""}</span>')
    parts += [
        "</summary>",
        f'<blockquote class="rag-passage">{snippet.html()}</blockquote>',
        f'<div class="rag-span">{esc(where)}</div>',
    ]
    if citation.also_in:
        items = "".join(
            f"<li>{esc(one_line(r.title) or '(untitled)')} · "
            f"{esc(' · '.join(x for x in (one_line(r.outlet), one_line(r.published)) if x))}"
            f"{' · ' + _link(r.url, None) if r.url else ''}</li>" for r in citation.also_in)
        parts.append('<div class="rag-also-list">The same story, also in:'
                     f"<ul>{items}</ul></div>")
    parts.append("</details>")
    return "".join(parts)


def timeline_html(result: Answer, prefix: str, titles: dict[int, str]) -> str:
    """A timeline answer: one line per event, its day first, oldest at the top."""
    sentences = list(result.sentences)
    rows = []
    for event, sentence in zip(result.timeline, sentences, strict=False):
        opening = '<li class="rag-before">' if event.before else "<li>"
        tag = '<span class="rag-before-tag">before</span> ' if event.before else ""
        rows.append(f'{opening}<time class="rag-day" datetime="{esc(event.date)}">'
                    f"{esc(event.date_text or event.date)}</time> {tag}"
                    f"{_sentence_html(sentence, prefix, titles)}</li>")
    return f'<ol class="rag-timeline">{"".join(rows)}</ol>'


def filter_html(result: Answer) -> str:
    """The date range the question's words became, and how to drop it."""
    f = result.date_filter
    if f is None:
        return ""
    return (f'<p class="rag-filter">Searched passages about <b>{esc(f.text)}</b> '
            f"(from “{esc(one_line(f.phrase))}”, read {esc(f.anchor_note)}). Untick "
            "“Dates in my question narrow the search” to search all dates.</p>")


def _sentence_html(sentence: AnswerSentence, prefix: str, titles: dict[int, str]) -> str:
    refs = "".join(
        f'<a class="rag-cite" href="#{esc(anchor(prefix, n))}" '
        f'title="{esc(titles.get(n, f"source {n}"))}">[{n}]</a>'
        for n in sentence.citations
    )
    body = esc(sentence.text)
    if refs:
        body += f'<sup class="rag-refs">{refs}</sup>'
    if sentence.supported:
        return f'<span class="rag-sent">{body}</span>'
    why = ("no citation" if not sentence.citations else
           f"the cited passage does not support it (support {sentence.score:.2f})")
    return (f'<span class="rag-sent rag-unsupported" title="Unsupported: {esc(why)}">{body}'
            f' <span class="rag-flag">⚠ unsupported</span></span>')


def answer_html(result: Answer, prefix: str = "a", lookup: TextLookup | None = None) -> str:
    """The final answer: sentences with footnotes, flags, mode and sources."""
    prefix = safe_prefix(prefix)
    citations = list(result.citations)
    sentences = list(result.sentences)
    titles = {c.n: one_line(c.title) for c in citations}
    parts = ['<div class="rag-answer">', filter_html(result)]
    if result.clarify:
        parts.append(clarify_html(result))
    elif result.timeline and not result.refused:
        parts.append(timeline_html(result, prefix, titles))
    elif result.refused or not sentences:
        parts.append(f'<p class="rag-text rag-refused">{esc(result.answer)}</p>')
    else:
        body = " ".join(_sentence_html(s, prefix, titles) for s in sentences)
        parts.append(f'<p class="rag-text">{body}</p>')
        unsupported = sum(1 for s in sentences if not s.supported)
        if unsupported:
            parts.append(f'<p class="rag-warning">⚠ {unsupported} of {len(sentences)} '
                         "sentences are not supported by the passages they cite.</p>")
    notice = result.notice
    if notice:
        parts.append(f'<p class="rag-notice">Note: {esc(notice)}</p>')
    total = (result.timings_ms or {}).get("total")
    timing = f" · {total / 1000:.1f} s" if isinstance(total, int | float) else ""
    parts.append(f'<p class="rag-meta">Mode: <span class="rag-mode">'
                 f'{esc(mode_label(result))}</span>{esc(timing)}</p>')
    if citations:
        parts.append('<div class="rag-sources"><div class="rag-sources-title">Sources</div>')
        parts += [source_html(c, prefix, lookup) for c in citations]
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def clarify_html(result: Answer) -> str:
    """A question back: each story a link that asks the question about it (the page's
    script puts the link's title, the question, in the box and sends it)."""
    links = []
    for c in result.clarify:
        label = one_line(c.title) or "(untitled)"
        if c.published:
            label += f" ({one_line(c.published)})"
        links.append(f'<li><a class="rag-choice" href="#question" title="{esc(c.question)}">'
                     f"{esc(label)}</a></li>")
    return ('<p class="rag-text rag-clarify">Which story do you mean? The articles cover:</p>'
            f'<ul class="rag-choices">{"".join(links)}</ul>')


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



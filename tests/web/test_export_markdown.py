"""The Markdown export stays text in a Markdown viewer, whatever an article holds.

Rendered with markdown-it-py (CommonMark, and CommonMark + tables as GitHub-style
viewers do), an export must make no HTML but its own structure, link only a citation's
http(s) URL, and show every field's characters as they were.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from hypothesis import example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from web.ui import export

ATTACKS = [
    "<img src=x onerror=alert(1)>",
    "[click](https://attacker.example)",
    "![x](https://attacker.example/t.png)",
    "<https://evil> <script>alert(1)</script>",
    "`code` ``two`` ```",
    "*em* **strong** _em_ __strong__ ~~struck~~",
    "# heading #",
    "1. item",
    "2) item",
    "- item",
    "+ item",
    "> quote",
    "---",
    "===",
    "~~~",
    "| a | b |\n|---|---|\n| c | d |",
    "line\nbreak\n\n# new block",
    "[ref]: https://attacker.example",
    "see [ref]",
    "&lt;img&gt; &amp; &#60;script&#62;",
    "back\\slash\\",
    "trailing #",
    "javascript:alert(1)",
    "a\x00b",
]
# What the export's own structure makes; anything else came from the content.
STRUCTURE_TAGS = {"h1", "h2", "p", "em", "strong", "ol", "li", "blockquote", "code", "a"}
RENDERERS = {
    "commonmark": MarkdownIt("commonmark"),
    "commonmark+table": MarkdownIt("commonmark").enable("table"),
}

texts = st.one_of(st.sampled_from(ATTACKS), st.text())
urls = st.one_of(
    st.none(),
    st.sampled_from([
        "javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)",
        "java\nscript:alert(1)", "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)", "https://attacker.example/<img src=x onerror=alert(1)>",
        "https://ex.example/a b\"c'd`e>f<g\\h%zz]*_", "http://ex.example/x?a=1&b=<2>",
        "https://attacker.example)](javascript:alert(1)", "ftp://ex.example/f", "//ex.example/",
    ]),
    st.builds(str.__add__, st.sampled_from(["http://", "https://", "HTTP://", "javascript:",
                                            "data:", "mailto:", ""]), st.text()),
)


class _Html(HTMLParser):
    """Start tags (with attributes) and the visible text of each block (h1, h2, p, li),
    in document order, text going to the innermost block; empty blocks are dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # text arrives html-unescaped
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self._blocks: list[list[str]] = []
        self._open: list[list[str]] = []

    @property
    def blocks(self) -> list[str]:
        texts = ("".join(block).strip() for block in self._blocks)
        return [text for text in texts if text]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        if tag in ("h1", "h2", "p", "li"):
            self._blocks.append([])
            self._open.append(self._blocks[-1])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "p", "li") and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1].append(data)


def _parse(markdown: str, renderer: str) -> _Html:
    parser = _Html()
    parser.feed(RENDERERS[renderer].render(markdown))
    parser.close()
    return parser


def _visible(value: object) -> str:
    """What a field shows: one line, and NUL as CommonMark shows it."""
    return " ".join(str(value or "").split()).replace("\x00", "\ufffd")


def _is_http(url: str | None) -> bool:
    try:
        parts = urlsplit(_visible(url))
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _turn(question: str, sentence: str, title: str, outlet: str, quote: str, notice: str,
          model: str, url: str | None, path: str | None) -> dict[str, Any]:
    citation = {"n": 1, "article_id": "a1", "title": title, "outlet": outlet,
                "published": "2024-07-01", "url": url, "path": path, "chunk_id": "a1:v:0",
                "start": 3, "end": 9, "quote": quote}
    result = {"question": question, "answer": sentence, "refused": False, "mode": "llm",
              "model": model, "notice": notice, "citations": [citation],
              "sentences": [{"text": sentence, "citations": [1], "supported": False,
                             "score": 0.1}]}
    return {"question": question, "result": result}


def _benign(value: str | None) -> str | None:
    """A plain stand-in with the same shape: empty stays empty."""
    return "x" if _visible(value) else value


@settings(max_examples=150, deadline=None)
@given(question=texts, sentence=texts, title=texts, outlet=texts, quote=texts, notice=texts,
       model=texts, url=urls, path=texts)
@example(question=ATTACKS[0], sentence=ATTACKS[1], title=ATTACKS[0], outlet=ATTACKS[5],
         quote=ATTACKS[1], notice=ATTACKS[3], model=ATTACKS[4], url="javascript:alert(1)",
         path="/x/`a``b`/<c>.txt")
def test_export_renders_only_its_own_structure_and_shows_the_text(
        question: str, sentence: str, title: str, outlet: str, quote: str, notice: str,
        model: str, url: str | None, path: str) -> None:
    turn = _turn(question, sentence, title, outlet, quote, notice, model, url, path)
    markdown = export.conversation_markdown([turn])
    # the file itself holds no tag: a "<" only opens the autolink of an http(s) URL
    assert markdown.count("<") == markdown.count("<http"), markdown
    plain_url = url if _is_http(url) else _benign(url)
    plain = export.conversation_markdown([_turn(*(
        _benign(v) for v in (question, sentence, title, outlet, quote, notice, model)),
        plain_url, _benign(path))])  # type: ignore[arg-type]
    for renderer in RENDERERS:
        got = _parse(markdown, renderer)
        assert {tag for tag, _ in got.tags} <= STRUCTURE_TAGS, (renderer, got.tags)
        # the same structure as plain text gives: no emphasis, code, list... from content
        assert got.tags == _parse(plain, renderer).tags, (renderer, markdown)
        links = [dict(attrs).get("href") or "" for tag, attrs in got.tags if tag == "a"]
        assert len(links) == (1 if _is_http(url) else 0), (renderer, url, links)
        assert all(href.startswith(("http://", "https://")) for href in links)
        if links:
            host = urlsplit(html.unescape(links[0])).hostname
            assert host and host == urlsplit(export._md_url(url) or "").hostname

        blocks = list(got.blocks)  # h1, exported, h2, answer, [note], mode, sources, ...
        assert blocks[2] == f"1. {_visible(question)}".strip()
        assert blocks[3] == f"{_visible(sentence)} [1] (⚠ unsupported)".strip()
        if notice:
            assert blocks.pop(4) == f"Note: {_visible(notice)}".strip()
        mode, sources, source = blocks[4:7]
        quoted = blocks[7] if len(blocks) > 7 else ""  # an empty quote makes no paragraph
        assert mode == (f"Mode: LLM: {_visible(model)}".strip() if model else "Mode: LLM")
        assert sources == "Sources:"
        assert source.startswith(f"{_visible(title) or '(untitled)'} — {_visible(outlet)}")
        assert source.endswith("— characters 3–9")
        if url and not _is_http(url):
            assert f"— {_visible(url)} —" in source
        elif not url and _visible(path):  # a code span shows its content as written
            assert html.escape(_visible(path), quote=False) in source
        if _visible(quote):
            assert quoted == _visible(quote)


def test_the_reported_attack_article_exports_as_text() -> None:
    title = "<img src=x onerror=alert(1)>"
    quote = "Officials said [link](https://attacker.example) ![x](https://attacker.example/t.png)"
    turn = _turn("what happened?", "It happened.", title, "Evil <b>Daily</b>", quote, "",
                 "", None, "/data/uploads/evil.txt")
    markdown = export.conversation_markdown([turn])
    assert "<img" not in markdown and "<b>" not in markdown and "[link](" not in markdown
    assert "&lt;img src=x onerror=alert(1)&gt;" in markdown
    for renderer in RENDERERS:
        out = RENDERERS[renderer].render(markdown)
        assert "<img" not in out and "<a " not in out and "<b>" not in out, out
        got = _parse(markdown, renderer)
        assert got.blocks[6].startswith(f"{title} — Evil <b>Daily</b>")
        assert got.blocks[7] == quote


@given(st.sampled_from(["javascript:alert(1)", "JAVASCRIPT:alert(1)", " javascript:alert(1)",
                        "java\tscript:alert(1)", "javascript://example.com/%0aalert(1)",
                        "data:text/html,<script>alert(1)</script>"]))
def test_a_javascript_url_never_becomes_a_link(url: str) -> None:
    turn = _turn("q", "s.", "t", "o", "quote", "", "m", url, None)
    markdown = export.conversation_markdown([turn])
    for renderer in RENDERERS.values():
        out = renderer.render(markdown)
        assert "<a " not in out and "href" not in out, out
        assert "<script" not in out.lower()


def test_http_urls_are_percent_encoded_autolinks() -> None:
    url = "https://news.example/a b?q=\"x\"&r=<y>`z`'"
    link = export._md_url(url)
    assert link == "https://news.example/a%20b?q=%22x%22&r=%3Cy%3E%60z%60%27"
    markdown = export.conversation_markdown([_turn("q", "s.", "t", "", "x", "", "", url, None)])
    assert f"<{link}>" in markdown
    assert export._md_url("javascript:alert(1)") is None
    assert export._md_url("https:///no-host") is None


def test_code_span_fence_outlasts_backticks_inside() -> None:
    assert export._md_code("/data/a.txt") == "`/data/a.txt`"
    assert export._md_code("a``b") == "```a``b```"
    assert export._md_code("`a`") == "`` `a` ``"
    assert export._md_code("") == ""

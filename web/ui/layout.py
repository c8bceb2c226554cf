"""The page: Chat, Library and Feeds tabs, their events, and the styles and script.

The event handlers are thin: they check the caller's role and hand over to
`web.service.NewsApp` (library) or `web.ui.chat` (asking, export).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from rag.types import AnswerMode, choices
from web.auth import EDITOR, NotEditor
from web.feeds import FEED_COLUMNS
from web.limits import FIELD_CHARS
from web.service import FORMATS, NewsApp
from web.ui import api, chat
from web.uploads import forget_gradio_upload

EXAMPLES = [
    "Why did relations between Iran and Azerbaijan sour?",
    "When did Pezeshkian meet Aliyev?",
    "Why does Iran oppose the Zangezur corridor?",
    "How many ethnic Azerbaijanis live in Iran?",
]
LIBRARY_COLUMNS = ["Title", "Published", "Outlet", "Chunks", "Source", "ID"]


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
.rag-choices { margin: .2em 0 .5em 1.2em; }
.rag-choice { cursor: pointer; }
.rag-filter { font-size: .88em; padding: .2em .5em; border-radius: 6px;
  background: var(--background-fill-secondary); display: inline-block; }
.rag-timeline { list-style: none; margin: .2em 0 .5em 0; padding-left: .2em;
  border-left: 2px solid var(--color-accent); }
.rag-timeline li { margin: 0 0 .45em .6em; position: relative; }
.rag-timeline li::before { content: ""; position: absolute; left: -1.05em; top: .45em;
  width: .55em; height: .55em; border-radius: 50%; background: var(--color-accent); }
.rag-day { font-weight: 600; font-variant-numeric: tabular-nums; margin-right: .4em;
  white-space: nowrap; }
.rag-timeline li.rag-before { opacity: .75; }
.rag-timeline li.rag-before::before { background: transparent;
  border: 2px solid var(--color-accent); box-sizing: border-box; }
.rag-before-tag { font-size: .8em; text-transform: uppercase; letter-spacing: .04em;
  opacity: .8; margin-right: .3em; }
.rag-also { opacity: .8; font-size: .9em; }
.rag-also-list { font-size: .88em; opacity: .9; }
.rag-also-list ul { margin: .1em 0 .2em 1.2em; }
"""

# A footnote [n] opens its source's <details> and scrolls to it (without this script
# the link still scrolls there, the details just stay closed); a story offered back
# asks the question about it.
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
// A story offered back ("Which story do you mean?") asks the question about it.
document.addEventListener('click', function (ev) {
  var a = ev.target && ev.target.closest ? ev.target.closest('a.rag-choice') : null;
  var box = document.querySelector('#question textarea');
  var ask = document.querySelector('#ask');
  if (!a || !box || !ask) return;
  ev.preventDefault();
  box.value = a.getAttribute('title') || '';
  box.dispatchEvent(new Event('input', {bubbles: true}));
  setTimeout(function () { ask.click(); }, 50);
}, true);
</script>"""


def build(app: NewsApp) -> gr.Blocks:
    """The page: Chat, Library and Feeds tabs, plus the JSON API for gradio_client."""
    # gradio's own cache (uploads, files handed to the browser) is swept every 10 min of
    # files older than an hour; our upload copies live in the data folder instead.
    with gr.Blocks(title="News RAG", analytics_enabled=False,
                   delete_cache=(600, int(chat.EXPORT_MAX_AGE))) as demo:
        gr.Markdown("# News RAG\nAsk questions of your news articles. Every claim cites the "
                    "passage it comes from: click its number to see it.")
        banner = gr.Markdown(app.banner(), elem_id="banner")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat-tab"):
                tab = _chat_tab(app)
            with gr.Tab("Library", id="library-tab"):
                library = _library_tab(app)
            with gr.Tab("Feeds", id="feeds-tab"):
                feeds = _feeds_tab(app)
        _wire_chat(app, tab)
        _wire_library(app, library, tab, banner)
        _wire_feeds(app, feeds)
        demo.load(**_refresh_io(app, library, tab, banner), api_visibility="private")

        def tools_for(request: gr.Request) -> tuple[Any, ...]:
            editor = app.role(request) == EDITOR
            return (gr.Column(visible=editor), gr.Column(visible=editor),
                    gr.Markdown(visible=not editor), gr.Column(visible=editor),
                    gr.Markdown(visible=not editor),
                    gr.Markdown(app.setup_text() if editor else "", visible=editor))

        demo.load(tools_for, None, [library["add_tools"], library["remove_tools"],
                                    library["reader_note"], feeds["tools"], feeds["note"],
                                    library["setup"]],
                  api_visibility="private", show_progress="hidden")
        api.register(app)
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
            c["question_dates"] = gr.Checkbox(
                value=True, label="Dates in my question narrow the search",
                info="“in March”, “last week”, “since 2024”: the answer shows the range; "
                     "untick to search all dates", elem_id="question-dates")
            c["mode"] = gr.Radio(choices(AnswerMode), value=app.settings.answer_mode,
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
    rows, count = app.library_view()
    lib["count"] = gr.Markdown(count, elem_id="library-count")
    lib["table"] = gr.Dataframe(
        value=rows, headers=LIBRARY_COLUMNS,
        datatype=["str", "str", "str", "number", "str", "str"],
        column_widths=["38%", "11%", "13%", "8%", "18%", "12%"],
        interactive=False, wrap=True, elem_id="library-table",
    )
    lib["reader_note"] = gr.Markdown(
        "You can search the library and ask questions; only editors add or remove articles.",
        visible=False, elem_id="reader-note")
    # for editors only: the set-up notes that answers no longer carry
    lib["setup"] = gr.Markdown("", visible=False, elem_id="server-setup")
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


def _feeds_tab(app: NewsApp) -> dict[str, Any]:
    f: dict[str, Any] = {}
    gr.Markdown("Feeds (RSS, Atom, JSON Feed, sitemaps) the app follows: each is read on "
                "its interval and its new entries are added to the library.")
    f["table"] = gr.Dataframe(value=app.feeds.rows(), headers=FEED_COLUMNS,
                              datatype=["str"] * 5, interactive=False, wrap=True,
                              column_widths=["40%", "8%", "14%", "16%", "22%"],
                              elem_id="feeds-table")
    f["refresh"] = gr.Button("Refresh", size="sm", elem_id="feeds-refresh")
    # the watcher's restarts and the feeds file's skipped lines (empty when all is well)
    f["status"] = gr.Markdown(app.feeds.status, elem_id="feeds-status")
    f["note"] = gr.Markdown("Only editors add or remove feeds.", visible=False,
                            elem_id="feeds-note")
    with gr.Row() as f["tools"]:
        with gr.Column(scale=3):
            gr.Markdown("### Follow a feed")
            f["url"] = gr.Textbox(label="Feed URL (http or https)", elem_id="feed-url",
                                  max_length=2048)
            with gr.Row():
                f["every"] = gr.Textbox(label="Every", placeholder="15m", scale=1,
                                        elem_id="feed-every", max_length=20)
                f["outlet"] = gr.Textbox(label="Outlet (if its entries don't say)", scale=3,
                                         elem_id="feed-outlet", max_length=FIELD_CHARS)
            f["add"] = gr.Button("Follow", variant="primary", elem_id="feed-add")
        with gr.Column(scale=2):
            gr.Markdown("### Stop following")
            # custom values: the list changes under the page (another editor, the file)
            f["pick"] = gr.Dropdown([row[0] for row in app.feeds.rows()], value=None,
                                    label="Feed", elem_id="feed-pick",
                                    allow_custom_value=True)
            f["remove"] = gr.Button("Stop following", variant="stop", elem_id="feed-remove")
    f["said"] = gr.Markdown(elem_id="feed-said")
    return f


def _wire_feeds(app: NewsApp, f: dict[str, Any]) -> None:
    def shown() -> tuple[Any, ...]:
        rows = app.feeds.rows()
        return rows, gr.Dropdown(choices=[r[0] for r in rows], value=None), \
            app.feeds.status()

    @api.shows_errors(app)
    def follow(url: str, every: str, outlet: str, request: gr.Request) -> str:
        app.require_editor(request)
        try:
            return app.feeds.add(url, every, outlet)
        except ValueError as exc:
            raise gr.Error(f"Not followed: {exc}.", print_exception=False) from None

    @api.shows_errors(app)
    def unfollow(url: str | None, request: gr.Request) -> str:
        app.require_editor(request)
        try:
            return app.feeds.remove(url)
        except ValueError as exc:
            raise gr.Error(f"Not removed: {exc}.", print_exception=False) from None

    outputs = [f["table"], f["pick"], f["status"]]
    f["refresh"].click(shown, None, outputs, api_visibility="private", show_progress="hidden")
    added = f["add"].click(follow, [f["url"], f["every"], f["outlet"]], f["said"],
                           api_name="follow_feed", concurrency_id="library",
                           concurrency_limit=1)
    added.success(lambda: None, None, f["url"], api_visibility="private")
    added.then(shown, None, outputs, api_visibility="private")
    f["remove"].click(unfollow, f["pick"], f["said"], api_name="unfollow_feed",
                      concurrency_id="library", concurrency_limit=1).then(
        shown, None, outputs, api_visibility="private")


def _wire_chat(app: NewsApp, c: dict[str, Any]) -> None:
    chat_io = {
        "fn": functools.partial(chat.chat, app),
        "inputs": [c["question"], c["chatbot"], c["turns"], c["articles"], c["outlets"],
                   c["date_from"], c["date_to"], c["mode"], c["question_dates"]],
        "outputs": [c["chatbot"], c["turns"], c["question"], c["export"]],
        "concurrency_id": "answer",
        "concurrency_limit": app.settings.answer_concurrency,
    }
    asked = [c["question"].submit(**chat_io, api_name="chat"),
             c["ask"].click(**chat_io, api_visibility="private")]
    # Stop closes the answer's generator, which closes an LLM's connection
    # (rag/answer/draft/llm.py).
    c["stop"].click(None, None, None, cancels=asked, api_visibility="private")

    c["new_chat"].click(chat.new_chat, None, [c["chatbot"], c["turns"], c["export"]],
                        api_name="new_chat")
    c["chatbot"].clear(chat.new_chat, None, [c["chatbot"], c["turns"], c["export"]],
                       api_visibility="private")  # the chat's own trash button

    c["export"].click(chat.export_file, c["turns"], c["export_file"],
                      api_visibility="private").success(
        None, js="() => { const b = document.querySelector('#export-download'); "
                 "(b && (b.tagName === 'BUTTON' ? b : b.querySelector('button')))?.click(); }")


def _refresh_io(app: NewsApp, lib: dict[str, Any], c: dict[str, Any], banner: Any
                ) -> dict[str, Any]:
    return {"fn": api.shows_errors(app)(functools.partial(library_updates, app)),
            "inputs": [lib["search"], c["articles"], c["outlets"]],
            "outputs": [lib["table"], lib["count"], c["articles"], c["outlets"], lib["pick"],
                        banner], "show_progress": "hidden"}


def _wire_library(app: NewsApp, lib: dict[str, Any], c: dict[str, Any], banner: Any) -> None:
    refresh_io = _refresh_io(app, lib, c, banner)
    lib["refresh"].click(**refresh_io, api_visibility="private")
    lib["search"].change(**refresh_io, api_visibility="private")

    def pick_row(evt: gr.SelectData) -> Any:
        row = evt.row_value or []
        return row[-1] if row else gr.skip()

    lib["table"].select(pick_row, None, lib["pick"], api_visibility="private")

    @api.shows_errors(app)
    def add_files(paths: list[str] | None, outlet: str, request: gr.Request,
                  progress: gr.Progress = gr.Progress()) -> Iterator[str]:  # noqa: B008
        try:
            app.require_editor(request)
        except NotEditor:
            for p in paths or []:
                forget_gradio_upload(Path(p))
            raise
        names: dict[str, str] = {}
        refused: list[str] = []
        for p in paths or []:
            saved, name = app.uploads.save_upload(p)
            if saved is None:
                refused.append(f"failed     {name}: larger than the "
                               f"{app.settings.max_file_mb:g} MiB limit (RAG_MAX_FILE_MB)")
            else:
                names[saved] = name
        yield from app.ingest_log(list(names), names, outlet, progress, refused=refused)

    @api.shows_errors(app)
    def add_urls(text: str, outlet: str, request: gr.Request,
                 progress: gr.Progress = gr.Progress()) -> Iterator[str]:  # noqa: B008
        app.require_editor(request)
        refs = app.limits.urls((text or "").split())
        yield from app.ingest_log(refs, {}, outlet, progress, local=False)

    @api.shows_errors(app)
    def add_text(text: str, title: str, outlet: str, request: gr.Request,
                 progress: gr.Progress = gr.Progress()) -> Iterator[str]:  # noqa: B008
        app.require_editor(request)
        ref = app.save_text(text, title or "")
        yield from app.ingest_log([ref], {ref: "pasted text"}, outlet, progress)

    @api.shows_errors(app)
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


def library_updates(app: NewsApp, query: str, picked_articles: list[str] | None,
                    picked_outlets: list[str] | None) -> tuple[Any, ...]:
    """(table, count, article filter, outlet filter, remove picker, banner)."""
    # the pickers: the newest matching the search (a large library's could not list all)
    rows, count, articles, outlets = app.library_page(query or "",
                                                      keep=list(picked_articles or []))
    ids = {v for _, v in articles}
    return (
        rows, count,
        gr.Dropdown(choices=articles, value=[i for i in picked_articles or [] if i in ids]),
        gr.Dropdown(choices=outlets, value=[o for o in picked_outlets or [] if o in outlets]),
        gr.Dropdown(choices=articles, value=None),
        app.banner(),
    )

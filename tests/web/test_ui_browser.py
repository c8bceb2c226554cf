"""The app in a real browser: Debian's chromium (/usr/bin/chromium, installed by the
test setup) driven by Playwright. Never `playwright install`: no browser is downloaded.

One app server for the module, on a temporary store holding the seed article.
Screenshots go to test-artifacts/ at the repo root.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support.documents import CLUB_ROW
from support.servers import free_port

from web.server import start
from web.service import NewsApp

pytest.importorskip("playwright", reason="playwright is a dev dependency: run `make setup`")
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword)")

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT.parent / "shared" / "corpora" / "seed"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
SEED_TITLE = "Iranian president Pezeshkian meets Azerbaijani leader Aliyev to improve ties"
ANSWER_TIMEOUT = 90_000  # ms; an extractive answer takes a few seconds on 2 cores

XSS_TITLE = "<script>window.__xss=1;alert('title')</script> Harbour plan <b>approved</b>"
XSS_ARTICLE = (
    f"{XSS_TITLE}\n\n"
    "The Harbour Authority approved the new breakwater on Monday. "
    "<img src=x onerror=\"window.__xss=2;alert('img')\"> The breakwater will cost 40 million "
    "dollars and protect the fishing fleet from winter storms, officials said.\n\n"
    "Construction of the breakwater starts in spring and takes two years, according to "
    "<svg onload=\"window.__xss=3\"></svg> the harbour master.\n"
)
UPLOAD_ARTICLE = (
    "Glacier museum opens in Tromsø\n\n"
    "A museum devoted to Arctic glaciers opened in Tromsø on Friday, with a walk-in ice "
    "tunnel cooled by seawater. The museum cost 12 million euros and expects 80,000 "
    "visitors a year, its director Ingrid Solberg said.\n\n"
    "The ice tunnel is rebuilt every winter from blocks cut on the Lyngen glacier.\n"
)




@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    from ingest.pipeline import ingest
    from rag.settings import Settings

    data = tmp_path_factory.mktemp("app_ui")
    settings = Settings(data_dir=data, collection="appui")
    news = NewsApp(settings)
    assert ingest([str(SEED)], news.store, settings, progress=False).count("added") == 1
    port = free_port()
    demo = start(news, "127.0.0.1", port, block=False)
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", app=news, settings=settings)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: `apt-get install -y chromium` (make test does it)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watch:
    """Dialogs (alert/confirm) and page errors seen by a page: an XSS would show here."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _dialog(self, dialog) -> None:  # noqa: ANN001 - playwright Dialog
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture()
def page(browser: Browser, server: SimpleNamespace) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 1000},
                                  accept_downloads=True)
    page = context.new_page()
    page.watch = Watch(page)  # type: ignore[attr-defined]
    page.goto(server.url)
    expect(page.locator("#question textarea")).to_be_visible(timeout=30_000)
    try:
        yield page
    finally:
        context.close()


def shot(page: Page, name: str, full: bool = False) -> Path:
    path = ARTIFACTS / f"ui-{name}.png"
    page.screenshot(path=str(path), full_page=full)
    return path


@contextlib.contextmanager
def own_app(browser: Browser, news: NewsApp) -> Iterator[tuple[Page, Watch]]:
    """A server of its own for `news`, and a page on it ready for a question."""
    port = free_port()
    demo = start(news, "127.0.0.1", port, block=False)
    context = browser.new_context(viewport={"width": 1360, "height": 1000})
    try:
        page = context.new_page()
        watch = Watch(page)
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.locator("#question textarea")).to_be_visible(timeout=30_000)
        yield page, watch
    finally:
        context.close()
        demo.close()


def ask(page: Page, question: str) -> None:
    """Type and send a question; record whether the pending (streaming) message showed."""
    page.evaluate("""() => {
        window.__sawPending = false;
        const chat = document.querySelector('#chat');
        new MutationObserver(() => {
            if (chat.querySelector('.rag-pending')) window.__sawPending = true;
        }).observe(chat, {childList: true, subtree: true});
    }""")
    before = page.locator("#chat .rag-answer:not(.rag-pending)").count()
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    expect(page.locator("#chat .rag-answer:not(.rag-pending)")).to_have_count(
        before + 1, timeout=ANSWER_TIMEOUT)


def last_answer(page: Page):  # noqa: ANN201 - a playwright Locator
    return page.locator("#chat .rag-answer:not(.rag-pending)").last


def test_ask_streams_an_answer_and_a_citation_opens_its_passage(page: Page) -> None:
    ask(page, "Why did relations between Iran and Azerbaijan sour?")
    assert page.evaluate("window.__sawPending")  # the answer arrived as a stream
    answer = last_answer(page)
    cites = answer.locator("a.rag-cite")
    assert cites.count() >= 2
    expect(answer.locator(".rag-mode")).to_contain_text("extractive")
    expect(answer.locator(".rag-source summary").first).to_contain_text(SEED_TITLE)
    expect(answer.locator(".rag-source summary").first).to_contain_text("2025-04-28")
    expect(answer.locator(".rag-source summary").first).to_contain_text(
        "iran-azerbaijan-baku-meeting.txt")
    assert answer.locator("details.rag-source[open]").count() == 0
    shot(page, "chat-answer")

    cites.nth(1).click()
    target = cites.nth(1).get_attribute("href").lstrip("#")
    source = page.locator(f"details#{target}")
    expect(source).to_have_attribute("open", "")
    mark = source.locator("mark")
    expect(mark).to_be_visible()
    passage = source.locator(".rag-passage").inner_text()
    assert len(passage) > len(mark.inner_text()) + 40  # the span shown in its context
    assert page.evaluate("(el) => getComputedStyle(el).backgroundColor",
                         mark.element_handle()) != "rgba(0, 0, 0, 0)"
    shot(page, "chat-citation")

    # the conversation exports as Markdown with its citations
    with page.expect_download() as download:
        page.locator("#export").click()
    md = Path(download.value.path()).read_text(encoding="utf-8")
    assert "## 1. Why did relations between Iran and Azerbaijan sour?" in md
    assert SEED_TITLE in md and "[1]" in md and "> " in md

    # a follow-up, then a new chat
    ask(page, "and when did the presidents meet?")
    assert page.locator("#chat .rag-answer:not(.rag-pending)").count() == 2
    page.locator("#new-chat").click()
    expect(page.locator("#chat .rag-answer")).to_have_count(0)
    assert not page.watch.dialogs  # type: ignore[attr-defined]


def test_example_questions_and_library_tab(page: Page, server: SimpleNamespace) -> None:
    page.get_by_text("How many ethnic Azerbaijanis live in Iran?").first.click()
    expect(page.locator("#question textarea")).to_have_value(
        "How many ethnic Azerbaijanis live in Iran?")
    page.get_by_role("tab", name="Library").click()
    table = page.locator("#library-table")
    expect(table).to_contain_text(SEED_TITLE)
    expect(table).to_contain_text("2025-04-28")
    expect(page.locator("#library-count")).to_contain_text("1 article(s)")
    page.locator("#library-search input, #library-search textarea").first.fill("zzzz")
    expect(page.locator("#library-count")).to_contain_text("0 of 1 shown")
    page.locator("#library-search input, #library-search textarea").first.fill("pezeshkian")
    expect(page.locator("#library-count")).to_contain_text("1 of 1 shown")
    shot(page, "library", full=True)


def upload(page: Page, path: Path) -> None:
    page.get_by_role("tab", name="Library").click()
    page.locator("#upload input[type=file]").set_input_files(str(path))
    expect(page.locator("#upload")).to_contain_text(path.stem, timeout=30_000)
    page.locator("#add-files").click()
    expect(page.locator("#ingest-log textarea")).to_have_value(
        re.compile(r"\d+ added, \d+ updated, \d+ unchanged, \d+ failed"), timeout=120_000)


def test_upload_an_article_then_ask_about_it(page: Page, tmp_path: Path) -> None:
    path = tmp_path / "glacier-museum.txt"
    path.write_text(UPLOAD_ARTICLE, encoding="utf-8")
    upload(page, path)
    log = page.locator("#ingest-log textarea").input_value()
    assert "added" in log and "Glacier museum opens in Tromsø" in log
    expect(page.locator("#library-table")).to_contain_text("Glacier museum opens in Tromsø")
    shot(page, "library-upload", full=True)

    page.get_by_role("tab", name="Chat").click()
    ask(page, "How much did the glacier museum in Tromsø cost?")
    answer = last_answer(page)
    expect(answer.locator(".rag-source summary").first).to_contain_text(
        "Glacier museum opens in Tromsø")
    answer.locator("a.rag-cite").first.click()
    expect(answer.locator("details.rag-source[open] mark").first).to_be_visible()
    assert "12 million euros" in answer.inner_text()
    shot(page, "chat-uploaded-article")

    # the article filter: a question about the seed, searched in the museum article only
    page.locator("#filter-articles input").fill("Glacier")
    page.get_by_role("option", name=re.compile("Glacier museum")).click()
    page.keyboard.press("Escape")
    expect(page.locator("#filter-articles")).to_contain_text("Glacier museum")
    ask(page, "Why did relations between Iran and Azerbaijan sour?")
    answer = last_answer(page)
    assert SEED_TITLE not in answer.inner_text()
    sources = answer.locator(".rag-source summary")
    for i in range(sources.count()):
        expect(sources.nth(i)).to_contain_text("Glacier museum opens in Tromsø")
    shot(page, "chat-filtered")


def test_an_article_with_script_and_onerror_runs_nothing(page: Page, tmp_path: Path) -> None:
    path = tmp_path / "harbour.txt"
    path.write_text(XSS_ARTICLE, encoding="utf-8")
    upload(page, path)
    table = page.locator("#library-table")
    expect(table).to_contain_text("<script>window.__xss=1")  # shown as text
    page.get_by_role("tab", name="Chat").click()
    page.locator("#filter-articles").click()  # the title in the filter list, as text
    ask(page, "How much will the breakwater cost?")
    answer = last_answer(page)
    expect(answer.locator(".rag-source summary").first).to_contain_text("<script>")
    answer.locator("a.rag-cite").first.click()
    text = answer.inner_text()
    assert "onerror" in text or "<svg" in text or "breakwater" in text
    page.wait_for_timeout(500)  # give any injected handler time to fire
    assert page.evaluate("window.__xss") is None
    assert page.watch.dialogs == []  # type: ignore[attr-defined]
    injected = page.evaluate("""() => ({
        img: document.querySelectorAll('img[src="x"]').length,
        svg: [...document.querySelectorAll('svg')].filter(
            s => (s.getAttribute('onload') || '').includes('__xss')).length,
        script: [...document.querySelectorAll('script')].filter(
            s => s.textContent.includes('__xss')).length,
        bold: [...document.querySelectorAll('#chat b, #library-table b')].length,
    })""")
    assert injected == {"img": 0, "svg": 0, "script": 0, "bold": 0}
    shot(page, "xss-escaped")


class ScriptedLLM:
    """An `Answerer` (rag.answer.draft.chain) standing in for the LLM: streams, word by word, one
    sentence copied from the first passage and one invented claim, both citing [1]."""

    mode = "llm"
    model = "scripted-llm"
    streams_text = True
    must_be_supported = True
    refusal_stands = True
    takes_window = False
    invented = "The talks also produced a trade pact worth 900 billion dollars."

    def draft(self, question: str, passages: list,  # noqa: ARG002
              window: Any = None) -> Generator[str, None, Any]:  # noqa: ARG002
        from rag.answer.draft.llm import parse_answer
        from rag.text import sentence_spans

        first = passages[0].text
        a, b = sentence_spans(first)[0]
        text = f"{first[a:b].strip()} [1] {self.invented} [1]"
        for word in text.split(" "):
            time.sleep(0.04)
            yield word + " "
        return parse_answer(text)

    def condense(self, question: str, history: list) -> str:  # noqa: ARG002
        return question


def test_llm_answer_streams_shows_the_model_and_flags_unsupported(
        browser: Browser, server: SimpleNamespace) -> None:
    from rag.answer.engine import Engine

    engine = Engine.from_settings(server.settings, store=server.app.store,
                                  llm_answerer=ScriptedLLM())
    with own_app(browser, NewsApp(server.settings, engine=engine)) as (page, watch):
        expect(page.locator("#mode-info")).to_contain_text("scripted-llm")
        expect(page.locator("#chat")).to_be_attached()  # mounted before it is observed
        page.evaluate("""() => {
            window.__partials = new Set();
            const chat = document.querySelector('#chat');
            new MutationObserver(() => {
                const p = chat.querySelector('.rag-pending .rag-text');
                if (p) window.__partials.add(p.textContent);
            }).observe(chat, {childList: true, subtree: true, characterData: true});
        }""")
        ask(page, "Why did relations between Iran and Azerbaijan sour?")
        assert page.evaluate("window.__partials.size") >= 3  # the text grew as it streamed
        answer = last_answer(page)
        expect(answer.locator(".rag-mode")).to_have_text("LLM: scripted-llm")
        flagged = answer.locator(".rag-unsupported")
        expect(flagged).to_have_count(1)
        expect(flagged).to_contain_text(ScriptedLLM.invented)
        expect(flagged.locator(".rag-flag")).to_have_text("⚠ unsupported")
        expect(answer.locator(".rag-warning")).to_contain_text("1 of 2 sentences")
        assert answer.locator(".rag-sent:not(.rag-unsupported)").count() == 1
        shot(page, "chat-llm-unsupported")
        assert watch.dialogs == []


def test_login_is_required_when_auth_is_set(browser: Browser, server: SimpleNamespace
                                            ) -> None:

    port = free_port()
    demo = start(NewsApp(server.settings, engine=server.app.engine), "127.0.0.1",
                     port, "editor:correct-horse:editor,rd:reader-pass:reader", block=False)
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        password = page.locator("input[type=password]")
        expect(password).to_be_visible(timeout=30_000)
        assert page.locator("#question").count() == 0  # nothing of the app before login
        shot(page, "login")
        for secret in ("wrong", "correct-horse"):
            page.get_by_role("textbox", name="username").fill("editor")
            password.fill(secret)
            page.get_by_role("button", name=re.compile("login", re.I)).click()
            if secret == "wrong":
                expect(page.get_by_text(re.compile("incorrect", re.I))).to_be_visible(
                    timeout=10_000)
        expect(page.locator("#question textarea")).to_be_visible(timeout=30_000)
        time.sleep(0.2)
        shot(page, "after-login")
        # the editor sees how this server answers and why (set-up hints stay out of answers)
        page.get_by_role("tab", name="Library").click()
        expect(page.locator("#server-setup")).to_contain_text("This server", timeout=10_000)
        expect(page.locator("#server-setup")).to_contain_text(
            re.compile(r"chosen by the (heuristic|llm) reader"))
        context.close()
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_role("textbox", name="username").fill("rd")
        page.locator("input[type=password]").fill("reader-pass")
        page.get_by_role("button", name=re.compile("login", re.I)).click()
        expect(page.locator("#question textarea")).to_be_visible(timeout=30_000)
        page.get_by_role("tab", name="Library").click()
        expect(page.locator("#reader-note")).to_be_visible(timeout=10_000)
        expect(page.locator("#server-setup")).to_be_hidden()
    finally:
        context.close()
        demo.close()


def test_a_question_without_a_subject_is_asked_back_and_a_story_link_answers_it(
        browser: Browser, tmp_path: Path) -> None:
    """Two stories of souring relations: "why did relations sour?" offers both; clicking
    the Iran-Azerbaijan one asks about it, and the answer gives its causes."""
    from ingest.pipeline import ingest
    from rag.settings import Settings

    (tmp_path / "club.txt").write_text(CLUB_ROW, encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", collection="clarifyui")
    news = NewsApp(settings)
    assert ingest([str(SEED), str(tmp_path / "club.txt")], news.store, settings,
                  progress=False).count("added") == 2
    with own_app(browser, news) as (page, watch):
        ask(page, "why did relations sour?")
        choices = page.locator("#chat a.rag-choice")
        expect(choices).to_have_count(2)
        expect(page.locator("#chat .rag-clarify")).to_contain_text("Which story do you mean?")
        seed_link = choices.filter(has_text="Pezeshkian")
        before = page.locator("#chat .rag-answer:not(.rag-pending)").count()
        seed_link.click()
        answers = page.locator("#chat .rag-answer:not(.rag-pending)")
        expect(answers).to_have_count(before + 1, timeout=ANSWER_TIMEOUT)
        last = answers.last
        expect(last).to_contain_text("Israel")
        expect(last.locator(".rag-source")).not_to_have_count(0)
        expect(last).not_to_contain_text("Castle United")
        shot(page, "clarify", full=True)
        assert not watch.dialogs and not watch.errors


def test_timeline_view_date_filter_and_story_copies(browser: Browser, tmp_path: Path) -> None:
    """Over the dated fixture corpus (which ends in June 2025, so relative dates are read
    against its newest article): a timeline question gets the timeline view; a question
    with "in March" says which dates it searched, and unticking the box drops that; a
    source other articles repeat lists them."""
    from ingest.pipeline import ingest
    from rag.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", collection="timelineui")
    news = NewsApp(settings)
    corpus = ROOT / "eval" / "datasets" / "dated_news.jsonl"
    assert ingest([str(corpus)], news.store, settings, progress=False).count("added") == 51
    with own_app(browser, news) as (page, watch):
        ask(page, "How did the Hallen Gate border dispute between Velland and Drossmark "
                  "develop?")
        rows = last_answer(page).locator("ol.rag-timeline li")
        assert rows.count() >= 4
        days = [rows.nth(i).locator("time").get_attribute("datetime")
                for i in range(rows.count())]
        assert days == sorted(days)
        expect(rows.first.locator("a.rag-cite")).to_have_count(1)
        shot(page, "timeline", full=True)

        question = ("What did the Velland foreign ministry say about the Hallen Gate crossing "
                    "in March?")
        ask(page, question)
        expect(last_answer(page).locator(".rag-filter")).to_contain_text("1–31 Mar 2025")
        expect(last_answer(page).locator(".rag-filter")).to_contain_text("newest article")
        last_answer(page).locator("a.rag-cite").first.click()
        source = last_answer(page).locator("details.rag-source").first
        expect(source.locator(".rag-also")).to_contain_text("also in 2 other articles")
        expect(source.locator(".rag-also-list li")).to_have_count(2)
        page.locator("#question-dates input[type=checkbox]").uncheck()
        ask(page, question)
        expect(last_answer(page).locator(".rag-filter")).to_have_count(0)
        assert not watch.dialogs and not watch.errors

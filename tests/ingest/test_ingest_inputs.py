"""Every kind of input `ingest` accepts or refuses, through the Python API and the CLI.

A bad source fails alone with a one-line reason while the rest of the batch goes on
and nothing already stored is lost; good sources of each format keep their metadata
and lose their clutter. Fixture articles are written here, into temporary folders;
one corpus file (a Latin-1 BBC article) is read in place.
"""

from __future__ import annotations

import http.server
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pypdf
import pytest
from pypdf.errors import LimitReachedError
from support.documents import pdf_pages

from ingest.formats import read_markdown
from ingest.pipeline import ingest
from ingest.results import Report, Result
from rag.settings import Settings
from rag.store.articles import ArticleStore

PROJECT = Path(__file__).resolve().parents[2]
CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"
LATIN1_ARTICLE = CORPORA / "bbc" / "sport" / "199.txt"

# -- fixture texts ---------------------------------------------------------------

KEEPER_TXT = """Rail fares to rise by three percent in January

Rail fares across the country will rise by three percent in January, the transport
department announced on Wednesday, below the rate of inflation for the second year.

Passenger groups said the rise would still hurt commuters who have seen fares climb
steadily over the past decade while services have been cut on many rural lines.
"""

GOOD_TXT = """Volunteers plant ten thousand trees along the canal

Volunteers planted ten thousand saplings along the old canal towpath over the weekend,
the largest community planting the county has seen.

The trust that runs the canal said the trees would shade the water and give nesting
birds shelter within five years.
"""

STDIN_TXT = """Ferry timetable changes for the winter season

The island ferry will run four crossings a day instead of six from November, the
operator said, because fewer visitors travel in the colder months.

Residents asked for an early morning sailing to be kept so that pupils can reach the
secondary school on the mainland in time for lessons.
"""

MARKDOWN = """# Library opens late on Thursdays

![Readers in the main hall](images/hall.jpg)

By Priya Nair

The **central library** will stay open until 9pm on Thursdays from next month, the [city council](https://example.org/council) said.

## Longer hours for study rooms

- Study rooms can be booked online from the first week.
- The cafe on the ground floor will also stay open.

Staff said the change follows a survey in which most readers asked for __evening hours__.
"""  # noqa: E501 - one paragraph per line, as markdown exports write them

# Words that appear only in the page furniture: none may reach stored text or chunks.
CLUTTER = ("Worldnavmenu", "Sportnavlink", "zzqtrackerscript", "zzqinlinescript",
           "zzqfooterline", "Footerco", "Subscribe today")

ARTICLE_TITLE = "Harbour bridge reopens after two years of repairs"
ARTICLE_HTML = f"""<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<title>Bridge reopens | The Coastal Courier</title>
<meta property="og:title" content="{ARTICLE_TITLE}">
<meta property="og:site_name" content="The Coastal Courier">
<meta property="article:published_time" content="2023-05-14T08:30:00Z">
<meta name="author" content="Maria Lopez">
<script>var trackingPixelId = "zzqtrackerscript"; window.dataLayer = [];</script>
</head><body>
<header><nav><ul>
<li><a href="/">Home</a></li><li><a href="/world">Worldnavmenu</a></li>
<li><a href="/sport">Sportnavlink</a></li><li><a href="/subscribe">Subscribe today</a></li>
</ul></nav></header>
<main><article>
<h1>{ARTICLE_TITLE}</h1>
<p class="byline">By Maria Lopez</p>
<p>The harbour bridge in Port Alder reopened to traffic on Sunday morning after two years of
structural repairs that cost the city council more than 40 million pounds.</p>
<p>Engineers replaced the corroded steel cables and resurfaced the entire deck, which had been
closed since a routine inspection found cracks in the main support towers in the spring.</p>
<p>Local shop owners said the closure had cut their trade by almost half, as visitors from the
northern districts had to take a long detour through the industrial estate.</p>
<p>The mayor said the bridge would now last for another fifty years and thanked residents for
their patience during the long works.</p>
</article></main>
<footer><p>Copyright Footerco Holdings 2023. Contact us. Privacy policy zzqfooterline.</p></footer>
<script>console.log("zzqinlinescript"); var more = "several words of script text here";</script>
</body></html>
"""

NAV_ONLY_HTML = """<!doctype html>
<html><head><title>Home</title>
<script>var banner = "this script has many words but it is not an article at all";</script>
</head><body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/weather">Weather</a></li></ul></nav>
</body></html>
"""

JSONL_GOOD_LINE_1 = (
    '{"title": "Bakery wins national bread award", "text": "A small bakery in the market '
    'town won the national bread award on Friday with a sourdough loaf made from local flour."}'
)
JSONL_GOOD_LINE_3 = (
    '{"title": "Swimming pool reopens", "text": "The town swimming pool reopened after a '
    'new roof was fitted, and the first morning session was fully booked within an hour."}'
)


def pdf_bytes(lines: list[str], title: str | None = None, author: str | None = None) -> bytes:
    """A minimal valid one-page PDF whose text is `lines` (Helvetica, one line each)."""
    return pdf_pages([lines], title, author)


PDF_LINES = [
    "Council approves new cycle lanes",
    "The city council voted on Tuesday to build twelve kilometres of protected",
    "cycle lanes along the river, after a long campaign by local residents.",
    "Work will start in the autumn and should finish before the end of next year,",
    "the transport committee said in a statement.",
]


def squash(text: str) -> str:
    return " ".join(text.split())


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # The local news site is on loopback, which URL ingest refuses unless opted in.
    return Settings(data_dir=tmp_path_factory.mktemp("store"), collection="ingest-inputs",
                    fetch_allow="127.0.0.1")


@pytest.fixture(scope="module")
def store(settings: Settings) -> ArticleStore:
    return ArticleStore(settings)


@dataclass
class Server:
    base: str
    release: threading.Event  # set to let a hanging /slow request finish


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A local news site: one article page, a page that hangs, 404 for the rest."""
    release = threading.Event()
    pages = {"/news/bridge.html": ARTICLE_HTML.encode()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path == "/slow":
                release.wait(10)
                body = ARTICLE_HTML.encode()
            elif path in pages:
                body = pages[path]
            else:
                self.send_error(404)
                return
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up (the timeout test)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.block_on_close = False
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", release)
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/news/story.html"


def by_source(report: Report, label: str) -> list[Result]:
    return [r for r in report.results if r.source == label]


# -- 1. bad inputs in one batch ------------------------------------------------------

# case -> the reason its source must fail with
BAD_INPUTS = {
    "empty": r"^empty file$",
    "whitespace": r"^empty file$",
    "binary": r"^binary file, not text$",
    "corrupt_pdf": r"^corrupt PDF \(\w+: .+\)$",
    "textless_pdf": r"^the PDF has no extractable text",
    "docx": r"^unsupported extension '\.docx'",
    "missing": r"^no such file, folder or URL$",
    "nav_only_html": r"^no article text found in the HTML$",
    "jsonl_line_2": r"^invalid JSON \(.+ at column \d+\)$",
    "unreachable_url": r"^could not fetch: the address is not allowed or not reachable$",
    "http_404": r"^HTTP 404 Not Found$",
    "slow_url": r"^timed out after 1 s$",
}


@dataclass
class Batch:
    report: Report
    labels: dict[str, str]  # case -> how the report names its source
    keeper_id: str
    keeper_version: str
    keeper_chunks: int
    good_txt: Path
    jsonl: Path


@pytest.fixture(scope="module")
def bad_batch(tmp_path_factory: pytest.TempPathFactory, settings: Settings, store: ArticleStore,
              server: Server, closed_port_url: str) -> Batch:
    folder = tmp_path_factory.mktemp("bad")
    keeper = folder / "keeper.txt"
    keeper.write_text(KEEPER_TXT, encoding="utf-8")
    first = ingest([str(keeper)], store, settings, progress=False)
    assert first.count("added") == 1, first.summary()
    stored = store.get_article(first.results[0].article_id)
    assert stored is not None

    files = {
        "empty": ("empty.txt", b""),
        "whitespace": ("blank.txt", b"  \n\t\n   \r\n"),
        "binary": ("image.txt", bytes(range(256)) * 8),
        "corrupt_pdf": ("broken.pdf", b"this is not a PDF at all, only junk \x8f\x90\n" * 40),
        "textless_pdf": ("scan.pdf", pdf_bytes([])),
        "docx": ("report.docx", b"PK\x03\x04 a zip container, not text"),
        "nav_only_html": ("menu.html", NAV_ONLY_HTML.encode()),
    }
    paths = {}
    for case, (name, data) in files.items():
        paths[case] = folder / name
        paths[case].write_bytes(data)
    good_txt = folder / "good.txt"
    good_txt.write_text(GOOD_TXT, encoding="utf-8")
    jsonl = folder / "feed.jsonl"
    jsonl.write_text(f'{JSONL_GOOD_LINE_1}\n{{"title": "cut off", "text": \n'
                     f"{JSONL_GOOD_LINE_3}\n", encoding="utf-8")

    labels = {case: str(path) for case, path in paths.items()}
    labels["missing"] = str(folder / "no-such-article.txt")
    labels["jsonl_line_2"] = f"{jsonl}:2"
    labels["unreachable_url"] = closed_port_url
    labels["http_404"] = f"{server.base}/news/gone.html"
    labels["slow_url"] = f"{server.base}/slow"
    # Bad sources before and after good ones: the batch must carry on past each.
    refs = [labels[c] for c in ("empty", "whitespace", "binary", "corrupt_pdf", "textless_pdf")]
    refs += [str(good_txt), str(LATIN1_ARTICLE)]
    refs += [labels[c] for c in ("docx", "missing", "nav_only_html", "unreachable_url")]
    refs += [str(jsonl), labels["http_404"], labels["slow_url"]]
    short_timeout = settings.override(fetch_timeout=1.0)
    report = ingest(refs, store, short_timeout, progress=False)
    return Batch(report, labels, stored.id, stored.version, stored.chunks, good_txt, jsonl)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_alone_with_a_one_line_reason(bad_batch: Batch, case: str) -> None:
    label = bad_batch.labels[case]
    results = by_source(bad_batch.report, label)
    assert len(results) == 1, [r.line() for r in bad_batch.report.results]
    result = results[0]
    assert result.status == "failed"
    assert re.search(BAD_INPUTS[case], result.reason), result.reason
    assert "\n" not in result.reason
    assert result.article_id is None and result.chunks == 0
    assert f"\n  {label}: {result.reason}" in bad_batch.report.summary()


def test_bad_batch_goes_on_and_keeps_what_was_stored(bad_batch: Batch, store: ArticleStore
                                                     ) -> None:
    report = bad_batch.report
    assert report.count("failed") == len(BAD_INPUTS), report.summary()
    # good.txt, the Latin-1 article and jsonl lines 1 and 3
    assert report.count("added") == 4, report.summary()
    assert report.summary().startswith(f"4 added, 0 updated, 0 unchanged, {len(BAD_INPUTS)} failed")
    keeper = store.get_article(bad_batch.keeper_id)
    assert keeper is not None, "an article stored before the bad batch was lost"
    assert keeper.version == bad_batch.keeper_version
    assert len(store.chunk_records(bad_batch.keeper_id)) == bad_batch.keeper_chunks
    good = by_source(report, str(bad_batch.good_txt))
    assert [r.status for r in good] == ["added"]
    stored = store.get_article(good[0].article_id)
    assert stored is not None and stored.title.startswith("Volunteers plant ten thousand trees")


def test_failed_sources_leave_nothing_in_the_store(bad_batch: Batch, store: ArticleStore) -> None:
    bad_files = {label for case, label in bad_batch.labels.items()
                 if not label.startswith("http") and case != "jsonl_line_2"}
    for article in store.list_articles():
        assert not bad_files & set(article.paths), article
        assert not (article.url or "").endswith(("/slow", "/gone.html"))
    assert not bad_files & {c.get("path") for c in store.chunk_records()}


def test_non_utf8_text_is_ingested_with_a_note(bad_batch: Batch, store: ArticleStore) -> None:
    [result] = by_source(bad_batch.report, str(LATIN1_ARTICLE))
    assert result.status == "added", result.reason
    assert any("UTF-8" in note and "cp1252" in note for note in result.notes), result.notes
    assert "cp1252" in result.line()
    article = store.get_article(result.article_id)
    assert article is not None
    assert article.title == "Chelsea sack Mutu"
    assert "a £15.8m signing from Parma" in article.text  # 0xA3 decoded as a pound sign
    assert "\ufffd" not in article.text
    assert article.paths == [str(LATIN1_ARTICLE.resolve())]


def test_jsonl_bad_line_fails_alone_and_good_lines_are_stored(bad_batch: Batch,
                                                              store: ArticleStore) -> None:
    label = str(bad_batch.jsonl)
    statuses = {n: [r.status for r in by_source(bad_batch.report, f"{label}:{n}")]
                for n in (1, 2, 3)}
    assert statuses == {1: ["added"], 2: ["failed"], 3: ["added"]}
    titles = {a.title for a in store.list_articles()}
    assert {"Bakery wins national bread award", "Swimming pool reopens"} <= titles
    # Each line of a file without URLs is its own article, found by its line.
    paths = {p for a in store.list_articles() for p in a.paths}
    assert {f"{bad_batch.jsonl.resolve()}#L1", f"{bad_batch.jsonl.resolve()}#L3"} <= paths


def test_file_over_the_size_limit_fails_and_the_rest_goes_on(
    tmp_path: Path, settings: Settings, store: ArticleStore
) -> None:
    big = tmp_path / "long-read.txt"
    big.write_text("A very long read\n\n" + "The council met again today. " * 200,
                   encoding="utf-8")
    small = tmp_path / "short.txt"
    small.write_text("Short news item about the weather\n\nIt rained a lot in the valley "
                     "today and the river rose by a metre.\n", encoding="utf-8")
    assert big.stat().st_size > 1100 > small.stat().st_size
    tiny_limit = settings.override(max_file_mb=0.001)
    report = ingest([str(big), str(small)], store, tiny_limit, progress=False)
    [failed] = report.failed
    assert failed.source == str(big)
    assert re.match(r"^larger than the [\d.]+ (MiB|bytes) limit", failed.reason), failed.reason
    assert "\n" not in failed.reason
    assert [r.status for r in by_source(report, str(small))] == ["added"]
    assert not store.find_by_path(str(big.resolve()))


@pytest.mark.parametrize("exc_type", [LimitReachedError, AttributeError, RecursionError])
def test_pdf_parser_crash_is_a_corrupt_pdf_not_a_crashed_batch(
    tmp_path: Path, settings: Settings, store: ArticleStore, monkeypatch: pytest.MonkeyPatch,
    exc_type: type[Exception],
) -> None:
    """pypdf raises more than PdfReadError on damaged files (a reference loop gives
    LimitReachedError, some broken dictionaries AttributeError); each must fail that
    one source, never the whole batch."""
    error = exc_type.__name__

    def broken_reader(*args: object, **kwargs: object) -> None:
        raise exc_type("Detected loop with self reference\nfor IndirectObject(6, 0)")

    monkeypatch.setattr(pypdf, "PdfReader", broken_reader)
    damaged = tmp_path / "damaged.pdf"
    damaged.write_bytes(pdf_bytes(PDF_LINES))
    after = tmp_path / "after.txt"
    after.write_text("Market hall gets a new roof\n\nThe old market hall will get a new slate "
                     f"roof this summer ({error}).\n", encoding="utf-8")
    report = ingest([str(damaged), str(after)], store, settings, progress=False)
    [failed] = report.failed
    assert failed.source == str(damaged)
    assert failed.reason == (f"corrupt PDF ({error}: Detected loop with self reference for "
                             "IndirectObject(6, 0))")
    assert [r.status for r in by_source(report, str(after))] == ["added"]


# -- 2. good formats -------------------------------------------------------------------


def test_markdown_markup_is_stripped_and_heading_is_the_title(
    tmp_path: Path, settings: Settings, store: ArticleStore
) -> None:
    path = tmp_path / "library.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    report = ingest([str(path)], store, settings, progress=False)
    [result] = report.results
    assert result.status == "added", result.reason
    article = store.get_article(result.article_id)
    assert article is not None
    assert article.title == "Library opens late on Thursdays"
    assert article.authors == ["Priya Nair"]
    text = article.text
    assert "The central library will stay open until 9pm" in text
    assert "the city council said." in text
    assert "readers asked for evening hours." in text
    assert "Longer hours for study rooms" in text
    for markup in ("#", "**", "__", "](", "![", "hall.jpg", "example.org", "\n- ", "By Priya"):
        assert markup not in text, markup
    assert all(line.strip() for line in text.split("\n\n"))
    for chunk in store.chunk_records(article.id):
        assert chunk["text"] == text[chunk["start"]:chunk["end"]]
        assert "**" not in chunk["text"] and "](" not in chunk["text"]


def test_markdown_soft_wrapped_paragraph_stays_one_paragraph() -> None:
    [article] = read_markdown(b"# Title of the story\n\nThe council said on Monday that\n"
                              b"the road would reopen next week.\n")
    assert article.text == "The council said on Monday that the road would reopen next week."


def assert_bridge_article(store: ArticleStore, article_id: str | None) -> None:
    """The article page's metadata was read and none of its furniture was kept."""
    assert article_id
    article = store.get_article(article_id)
    assert article is not None
    assert article.title == ARTICLE_TITLE
    assert article.published == date(2023, 5, 14)
    assert article.authors == ["Maria Lopez"]
    assert article.outlet == "The Coastal Courier"
    assert "reopened to traffic on Sunday morning" in article.text
    assert "thanked residents for their patience during the long works." in article.text
    assert "By Maria Lopez" not in article.text
    chunks = store.chunk_records(article_id)
    assert chunks and len(chunks) == article.chunks
    for text in [article.text, *(c["text"] for c in chunks)]:
        for word in CLUTTER:
            assert word not in text, f"{word!r} from the page furniture was stored"
        assert "<" not in text and "console.log" not in text and "dataLayer" not in text
    for chunk in chunks:
        assert chunk["title"] == ARTICLE_TITLE
        assert chunk["published"] == "2023-05-14"
        assert chunk["text"] == article.text[chunk["start"]:chunk["end"]]


def test_html_page_from_a_url(server: Server, settings: Settings, store: ArticleStore) -> None:
    url = f"{server.base}/news/bridge.html"
    report = ingest([url], store, settings, progress=False)
    [result] = report.results
    assert result.status in ("added", "unchanged"), result.reason
    assert_bridge_article(store, result.article_id)
    article = store.get_article(result.article_id)
    assert article is not None and article.url == url and article.paths == []
    assert {c["url"] for c in store.chunk_records(article.id)} == {url}


def test_html_page_from_a_file(tmp_path: Path, settings: Settings, store: ArticleStore) -> None:
    path = tmp_path / "bridge.html"
    path.write_text(ARTICLE_HTML, encoding="utf-8")
    report = ingest([str(path)], store, settings, progress=False)
    [result] = report.results
    assert result.status == "added", result.reason
    assert_bridge_article(store, result.article_id)
    article = store.get_article(result.article_id)
    assert article is not None and article.url is None
    assert article.paths == [str(path.resolve())]


def test_pdf_text_and_metadata_are_extracted(tmp_path: Path, settings: Settings,
                                             store: ArticleStore) -> None:
    path = tmp_path / "cycle-lanes.pdf"
    path.write_bytes(pdf_bytes(PDF_LINES, title="Council approves new cycle lanes",
                               author="Sam Okafor"))
    report = ingest([str(path)], store, settings, progress=False)
    [result] = report.results
    assert result.status == "added", result.reason
    article = store.get_article(result.article_id)
    assert article is not None
    assert article.title == "Council approves new cycle lanes"
    assert article.authors == ["Sam Okafor"]
    text = squash(article.text)
    # Hard-wrapped PDF lines are joined back into sentences.
    assert ("twelve kilometres of protected cycle lanes along the river, after a long "
            "campaign by local residents.") in text
    assert "the transport committee said in a statement." in text
    assert article.paths == [str(path.resolve())]
    assert store.chunk_records(article.id)


def test_jsonl_fields_become_metadata(tmp_path: Path, settings: Settings,
                                      store: ArticleStore) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_text(
        '{"title": "Port strike ends after pay deal", "url": "https://news.example.com/port", '
        '"published": "2024-02-29T10:00:00Z", "authors": ["Ann Lee", "Bo Chan"], '
        '"source": "Harbour Times", "text": "Dock workers returned to work on Thursday after '
        'accepting a two-year pay deal that ends a strike of six weeks."}\n'
        "\n"
        '{"title": "Orchard harvest is the best in years", "url": "https://ledger.example.org/'
        'orchard", "date": "March 3, 2024", "author": "By Carla Diaz and Tom Reed", '
        '"outlet": "Daily Ledger", "text": "Fruit growers in the valley picked a record apple '
        'crop this autumn after a warm spring and a wet summer."}\n',
        encoding="utf-8",
    )
    report = ingest([str(path)], store, settings, progress=False)
    assert [r.status for r in report.results] == ["added", "added"], report.summary()
    assert [r.source for r in report.results] == [f"{path}:1", f"{path}:3"]
    first = store.get_article(report.results[0].article_id)
    second = store.get_article(report.results[1].article_id)
    assert first is not None and second is not None
    assert (first.title, first.url, first.published, first.authors, first.outlet) == (
        "Port strike ends after pay deal", "https://news.example.com/port", date(2024, 2, 29),
        ["Ann Lee", "Bo Chan"], "Harbour Times")
    assert first.text.startswith("Dock workers returned to work on Thursday")
    assert first.paths == []  # an article with a URL is that URL, not a line of a file
    assert (second.title, second.url, second.published, second.authors, second.outlet) == (
        "Orchard harvest is the best in years", "https://ledger.example.org/orchard",
        date(2024, 3, 3), ["Carla Diaz", "Tom Reed"], "Daily Ledger")
    for chunk in store.chunk_records(first.id):
        assert (chunk["title"], chunk["url"], chunk["published"], chunk["outlet"]) == (
            "Port strike ends after pay deal", "https://news.example.com/port", "2024-02-29",
            "Harbour Times")


# -- 3. folders --------------------------------------------------------------------------


def test_folder_recurses_and_skips_readme_and_unsupported_files(
    tmp_path: Path, settings: Settings, store: ArticleStore
) -> None:
    root = tmp_path / "corpus"
    deep = root / "world" / "europe"
    deep.mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "README.md").write_text("# My corpus\n\nThese files are news articles I saved "
                                    "from several outlets last year.\n", encoding="utf-8")
    (root / "LICENSE.txt").write_text("Permission is hereby granted, free of charge, to any "
                                      "person obtaining a copy.\n", encoding="utf-8")
    (root / "notes.docx").write_bytes(b"PK\x03\x04 not an article")
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 jpeg")
    (root / ".git" / "description.txt").write_text("Unnamed repository; edit this file to "
                                                   "name it for gitweb.\n", encoding="utf-8")
    top = root / "canal.txt"
    top.write_text(GOOD_TXT.replace("ten thousand", "twelve thousand"), encoding="utf-8")
    nested = deep / "rail.md"
    nested.write_text("# " + KEEPER_TXT.replace("three percent", "four percent"),
                      encoding="utf-8")

    report = ingest([str(root)], store, settings, progress=False)
    assert not report.failed, report.summary()
    assert {r.source: r.status for r in report.results} == {
        str(top): "added", str(nested): "added"}
    assert len(report.skipped) == 4, report.skipped
    skipped = dict(entry.split(": ", 1) for entry in report.skipped)
    assert "README" in skipped[str(root / "README.md")]
    assert "README/LICENSE" in skipped[str(root / "LICENSE.txt")]
    assert skipped[str(root / "notes.docx")] == "unsupported extension"
    assert skipped[str(root / "photo.jpg")] == "unsupported extension"
    assert ".git" not in report.summary()  # hidden folders are passed over silently
    assert "skipped 4 file(s) in folders:" in report.summary()
    stored = store.get_article(by_source(report, str(nested))[0].article_id)
    assert stored is not None and stored.title.startswith("Rail fares to rise by four percent")


# -- 4. URL identity ---------------------------------------------------------------------


def test_tracking_parameters_do_not_make_a_new_article(server: Server, settings: Settings,
                                                       store: ArticleStore) -> None:
    clean = f"{server.base}/news/bridge.html"
    first = ingest([clean], store, settings, progress=False)
    [original] = first.results
    assert original.status in ("added", "unchanged"), original.reason
    before = store.list_articles()

    tracked = f"{clean}?utm_source=x&utm_medium=email&fbclid=abc123"
    again = ingest([tracked], store, settings, progress=False)
    [result] = again.results
    assert result.status == "unchanged", result.line()
    assert result.article_id == original.article_id
    assert again.chunks_written == 0
    after = store.list_articles()
    assert [(a.id, a.version) for a in after] == [(a.id, a.version) for a in before]

    # A parameter that is not tracking names another page: another article.
    other = ingest([f"{clean}?page=2"], store, settings, progress=False)
    assert other.results[0].status == "added"
    assert other.results[0].article_id != original.article_id


# -- CLI: stdin and the failure summary --------------------------------------------------


def test_cli_reads_stdin_and_reports_each_failure(tmp_path: Path, closed_port_url: str) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20)
    (tmp_path / "slides.docx").write_bytes(b"PK\x03\x04")
    data_dir = tmp_path / "data"
    bad = {
        str(tmp_path / "empty.txt"): "empty file",
        str(tmp_path / "image.txt"): "binary file, not text",
        str(tmp_path / "slides.docx"): "unsupported extension '.docx'",
        str(tmp_path / "missing.md"): "no such file, folder or URL",
        closed_port_url: "could not fetch: the address is not allowed or not reachable",
    }
    cmd = [sys.executable, "-m", "ingest", "--data-dir", str(data_dir), "--collection",
           "cli-inputs", "-q", "--outlet", "Island Post", "--allow-private", "-", *bad]
    proc = subprocess.run(cmd, input=STDIN_TXT, capture_output=True, text=True, cwd=PROJECT,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"1 added, 0 updated, 0 unchanged, 5 failed "
                        r"\(\d+ chunks written, \d+\.\d s\)", lines[0]), proc.stdout
    failure_lines = lines[1:]
    assert len(failure_lines) == len(bad), proc.stdout
    for source, reason in bad.items():
        matching = [line for line in failure_lines if line.startswith(f"  {source}: ")]
        assert len(matching) == 1, (source, proc.stdout)
        assert matching[0].removeprefix(f"  {source}: ").startswith(reason), matching[0]
        assert f"{source}: {reason}" in proc.stderr  # shown as it happens, too

    stored = ArticleStore(Settings(data_dir=data_dir, collection="cli-inputs")).list_articles()
    assert [(a.title, a.outlet, a.paths, a.url) for a in stored] == [
        ("Ferry timetable changes for the winter season", "Island Post", [], None)]
    article = ArticleStore(Settings(data_dir=data_dir, collection="cli-inputs")).get_article(
        stored[0].id)
    assert article is not None
    assert squash(article.text).startswith("The island ferry will run four crossings a day")

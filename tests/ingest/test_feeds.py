"""Feeds and sitemaps into the store: RSS, Atom, JSON Feed, a sitemap index with a
Google News sitemap, bad dates, a redirect, a 304, an entry whose page is gone, an
enormous feed (bounded), malformed XML (one line), an entry updated twice.

Everything is served by a test server on loopback, which the settings allow
explicitly (`fetch_allow="127.0.0.1"`); the articles are our own short texts.

Hostile feeds (issue 27): the files in tests/fixtures/feeds/ (written for these tests,
see its README) and, generated here, a 100k-deep JSON Feed and a 1.4 MB deeply nested
XML feed. Each must be one line in the CLI, one feed's failure in the watcher, and
never stop the others; the app's watcher is supervised; the feeds file stays one feed
a line whatever an editor types.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.servers import QuietHandler, QuietServer, clean_env

from ingest.cli import main as ingest_main
from ingest.feedparse import FeedError, _day
from ingest.feeds import SUMMARY_NOTE, FeedReport, FeedState, parse, read_feeds
from ingest.fetch import FetchPolicy
from ingest.watch import (
    MAX_BACKOFF,
    FeedLine,
    Watcher,
    load_feeds,
    parse_line,
    read_feeds_file,
    save_feeds,
)
from rag.settings import Settings
from rag.store.articles import ArticleStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
PAGE = """<!doctype html><html><head><title>{title}</title></head><body>
<nav>Home | World | Sport</nav><article><h1>{title}</h1>
<p>{body}</p><p>{more}</p></article><footer>Copyright Harbour Gazette</footer>
</body></html>"""
BODIES = {
    "ferry": ("Ferry service to Lundy Island resumes",
              "The ferry to Lundy Island resumed sailing on Tuesday after a three-week "
              "stoppage caused by storm damage to the landing stage at the harbour.",
              "Harbourmaster Ellen Tregarthen said repairs to the stage cost 40,000 pounds "
              "and that timetables would return to normal by the weekend."),
    "bakery": ("Village bakery wins national bread award",
               "A village bakery in Polperro has won the national sourdough award, beating "
               "more than 300 entries from across the country in the final judging round.",
               "Owner Morwenna Pascoe said the winning loaf used flour milled two miles away "
               "and a starter kept alive for eleven years."),
    "lighthouse": ("Lighthouse keeper's cottage opens as museum",
                   "The former keeper's cottage at Trevose Head opened as a small museum on "
                   "Saturday, with logbooks and lamps from the nineteenth century on display.",
                   "Volunteers spent two years restoring the cottage, the trust that runs the "
                   "site said, and entry will be free during the first month."),
}


def rss(items: list[tuple[str, str, str]], title: str = "Harbour Gazette") -> str:
    body = "".join(
        f"<item><title>{t}</title><link>{{base}}/{slug}.html</link><guid>{slug}</guid>"
        f"<pubDate>{when}</pubDate><dc:creator>Jenna Rowe</dc:creator>"
        f"<description>&lt;p&gt;Summary of {t}.&lt;/p&gt;</description></item>"
        for slug, t, when in items)
    return ('<?xml version="1.0"?><rss version="2.0" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>{title}</title><link>{{base}}/</link>{body}</channel></rss>")


class Site:
    """The feeds and pages; `pages` and `feeds` may be changed by a test, `hits`
    counts requests per path."""

    def __init__(self) -> None:
        self.pages = {slug: PAGE.format(title=t, body=b, more=m)
                      for slug, (t, b, m) in BODIES.items()}
        self.feeds: dict[str, str | bytes] = {}
        self.etags: dict[str, str] = {}
        self.hits: dict[str, int] = {}
        self.delay: dict[str, float] = {}  # seconds a page takes to come
        site = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?")[0]
                site.hits[path] = site.hits.get(path, 0) + 1
                if path == "/moved.xml":
                    self.reply(301, b"", {"Location": "/rss.xml"})
                    return
                name = path.strip("/")
                if name in site.feeds:
                    etag = site.etags.get(name)
                    if etag and self.headers.get("If-None-Match") == etag:
                        self.reply(304, b"", {"ETag": etag})
                        return
                    feed = site.feeds[name]  # text, or bytes (a fixture) served as they are
                    body = (feed.replace(b"{base}", site.base.encode())
                            if isinstance(feed, bytes) else
                            feed.replace("{base}", site.base).encode())
                    kind = "application/json" if name.endswith(".json") else "application/xml"
                    self.reply(200, body, {"Content-Type": kind,
                                                    **({"ETag": etag} if etag else {})})
                    return
                slug = name.removesuffix(".html")
                time.sleep(site.delay.get(slug, 0.0))
                if slug in site.pages:
                    self.reply(200, site.pages[slug].encode(),
                               {"Content-Type": "text/html; charset=utf-8"})
                    return
                self.reply(404, b"not found", {"Content-Type": "text/plain"})

            def reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@pytest.fixture
def site() -> Iterator[Site]:
    served = Site()
    yield served
    served.httpd.shutdown()
    served.httpd.server_close()


@pytest.fixture
def store(tmp_path: Path) -> ArticleStore:
    settings = Settings(data_dir=tmp_path / "data", collection="feeds",
                        fetch_allow="127.0.0.1")
    return ArticleStore(settings)


def read(store: ArticleStore, *urls: str, **kw: object) -> SimpleNamespace:
    feeds: list[FeedReport] = []
    stream = read_feeds(list(urls), store, store.settings,
                        policy=FetchPolicy.from_settings(store.settings),
                        on_feed=feeds.append, **kw)  # type: ignore[arg-type]
    results = list(stream)
    return SimpleNamespace(results=results, report=stream.result, feeds=feeds)


def by_title(store: ArticleStore) -> dict[str, object]:
    return {a.title: a for a in store.list_articles()}


def test_an_rss_feed_adds_its_entries_with_the_feeds_metadata_where_pages_lack_it(
        site: Site, store: ArticleStore) -> None:
    site.feeds["rss.xml"] = rss([
        ("ferry", "Ferry service to Lundy Island resumes", "Tue, 01 Dec 2026 23:30:00 -0500"),
        ("bakery", "Village bakery wins national bread award", "Mon, 30 Nov 2026 08:00:00 GMT")])
    got = read(store, site.url("rss.xml"))
    assert [r.status for r in got.results] == ["added", "added"], got.results
    [feed] = got.feeds
    assert (feed.kind, feed.entries, feed.read) == ("rss", 2, 2) and not feed.error
    ferry = by_title(store)["Ferry service to Lundy Island resumes"]
    assert ferry.published.isoformat() == "2026-12-01"  # the feed's own zone, not UTC's 2nd
    assert ferry.outlet == "Harbour Gazette" and ferry.authors == ["Jenna Rowe"]
    assert ferry.url == site.url("ferry.html")
    text = store.get_article(ferry.id).text
    assert "Harbourmaster Ellen Tregarthen" in text and "Home | World" not in text
    site.feeds["rss.xml"] = rss([
        ("bakery", "Village bakery wins national bread award", "Mon, 30 Nov 2026 08:00:00 GMT")])
    assert read(store, site.url("rss.xml")).feeds[0].seen == 1
    record = FeedState.of(store.settings).load()[site.url("rss.xml")]
    [kept] = record.entries  # what left the feed leaves its state
    assert kept.endswith("bakery")  # (feedparser reads the guid against the feed's URL)


def test_a_feed_read_twice_fetches_nothing_new_and_a_304_costs_one_request(
        site: Site, store: ArticleStore) -> None:
    site.feeds["rss.xml"] = rss([("ferry", "Ferry service to Lundy Island resumes",
                                  "Tue, 01 Dec 2026 10:00:00 GMT")])
    read(store, site.url("rss.xml"))
    assert site.hits["/ferry.html"] == 1
    again = read(store, site.url("rss.xml"))  # no ETag: the feed is read, the entry is not
    assert again.feeds[0].seen == 1 and again.feeds[0].read == 0 and not again.results
    assert site.hits["/ferry.html"] == 1
    site.etags["rss.xml"] = '"v1"'
    read(store, site.url("rss.xml"))  # learns the ETag
    third = read(store, site.url("rss.xml"))
    assert third.feeds[0].not_modified and "not modified" in third.feeds[0].line()
    assert site.hits["/rss.xml"] == 4 and site.hits["/ferry.html"] == 1
    record = FeedState.of(store.settings).load()[site.url("rss.xml")]
    assert record.etag == '"v1"' and record.last_read and record.last_error is None


def test_atom_json_feed_and_a_sitemap_index_with_a_news_sitemap(site: Site,
                                                                store: ArticleStore) -> None:
    site.feeds["atom.xml"] = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>Coast Weekly</title><id>urn:coast</id><updated>2026-11-29T10:00:00Z</updated>"
        "<entry><title>Ferry service to Lundy Island resumes</title><id>urn:ferry</id>"
        '<link href="{base}/ferry.html"/><updated>2026-11-29T10:00:00+01:00</updated>'
        "<author><name>Ada Penrose</name></author><summary>Ferry back.</summary></entry>"
        "</feed>")
    site.feeds["feed.json"] = (
        '{"version": "https://jsonfeed.org/version/1.1", "title": "Bread News", "items": ['
        '{"id": "b1", "url": "{base}/bakery.html", "title": "Village bakery wins national '
        'bread award", "date_published": "2026-11-28T09:00:00-08:00", '
        '"authors": [{"name": "Tom Hicks"}], "content_text": "A bakery won."}]}')
    site.feeds["sitemap-news.xml"] = (
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"><url>'
        "<loc>{base}/lighthouse.html</loc><news:news><news:publication><news:name>Trevose "
        "Times</news:name><news:language>en</news:language></news:publication>"
        "<news:publication_date>2026-11-27T18:00:00+00:00</news:publication_date>"
        "<news:title>Lighthouse keeper's cottage opens as museum</news:title></news:news>"
        "</url></urlset>")
    site.feeds["sitemap.xml"] = (
        '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/'
        '0.9"><sitemap><loc>{base}/sitemap-news.xml</loc></sitemap>'
        "<sitemap><loc>{base}/sitemap-gone.xml</loc></sitemap></sitemapindex>")
    got = read(store, site.url("atom.xml"), site.url("feed.json"), site.url("sitemap.xml"))
    assert [f.kind for f in got.feeds] == ["atom", "json", "sitemap index"]
    assert got.report.count("added") == 3, got.results
    assert any("sitemap-gone.xml failed: HTTP 404" in n for n in got.feeds[2].notes)
    articles = by_title(store)
    ferry = articles["Ferry service to Lundy Island resumes"]
    assert ferry.outlet == "Coast Weekly" and ferry.authors == ["Ada Penrose"]
    bakery = articles["Village bakery wins national bread award"]
    assert bakery.published.isoformat() == "2026-11-28" and bakery.outlet == "Bread News"
    lighthouse = articles["Lighthouse keeper's cottage opens as museum"]
    assert lighthouse.outlet == "Trevose Times"
    assert lighthouse.published.isoformat() == "2026-11-27"


def test_bad_dates_a_redirect_and_a_page_that_is_gone(site: Site, store: ArticleStore
                                                      ) -> None:
    site.feeds["rss.xml"] = rss([
        ("ferry", "Ferry service to Lundy Island resumes", "the day after tomorrow"),
        ("gone", "Harbour wall to be rebuilt", "Wed, 25 Nov 2026 12:00:00 GMT")])
    got = read(store, site.url("moved.xml"))  # 301 to rss.xml, through the fetch guard
    assert [r.status for r in got.results] == ["added", "added"], got.results
    articles = by_title(store)
    assert articles["Ferry service to Lundy Island resumes"].published is None
    wall = articles["Harbour wall to be rebuilt"]
    text = store.get_article(wall.id).text
    assert text == "Summary of Harbour wall to be rebuilt."  # the feed's summary, as text
    assert wall.feed_summary and not articles["Ferry service to Lundy Island resumes"] \
        .feed_summary  # kept with the article: the library says so
    [noted] = [r for r in got.results if r.title == "Harbour wall to be rebuilt"]
    assert any(n.startswith(SUMMARY_NOTE) and "HTTP 404" in n for n in noted.notes)
    assert wall.published.isoformat() == "2026-11-25"
    site.pages["gone"] = PAGE.format(title="Harbour wall to be rebuilt", body=BODIES["ferry"][1],
                                     more="The council approved the wall on Monday.")
    again = read(store, site.url("moved.xml"))  # the page not had is tried again: now it is
    assert [r.status for r in again.results] == ["updated"], again.results
    wall = by_title(store)["Harbour wall to be rebuilt"]
    assert not wall.feed_summary and "council approved" in store.get_article(wall.id).text


def test_an_enormous_feed_is_read_newest_first_up_to_the_bound(site: Site,
                                                              store: ArticleStore) -> None:
    items = [(f"story{n}", f"Story number {n}", f"Sun, {1 + n % 28:02d} Nov 2026 10:00:00 GMT")
             for n in range(3000)]
    site.feeds["huge.xml"] = rss(items)
    got = read(store, site.url("huge.xml"), max_entries=3)
    [feed] = got.feeds
    assert feed.entries == 3000 and feed.read == 3
    assert "3000 entries: read the newest 3" in feed.line()
    assert len(got.results) == 3  # the pages 404: summaries, each marked


def test_malformed_xml_is_one_clear_line_and_not_a_feed_says_so(
        site: Site, store: ArticleStore, capsys: pytest.CaptureFixture[str]) -> None:
    site.feeds["broken.xml"] = "<?xml version='1.0'?><rss><channel><item"
    site.feeds["page.xml"] = "<html><body><p>Not a feed at all.</p></body></html>"
    code = ingest_main(["--data-dir", str(store.settings.data_dir), "--collection", "feeds",
                        "feed", "--allow-private", site.url("broken.xml"), site.url("page.xml")])
    err = capsys.readouterr().err
    assert code == 1
    [broken] = [line for line in err.splitlines() if "broken.xml" in line]
    assert broken.startswith("feed failed") and "malformed XML (line 1:" in broken
    assert "not a feed (no RSS, Atom or JSON Feed" in err and "Traceback" not in err
    state = FeedState.of(store.settings).load()
    assert "malformed XML" in (state[site.url("broken.xml")].last_error or "")


def test_an_entry_updated_twice_updates_its_article_in_its_story(site: Site,
                                                                 store: ArticleStore) -> None:
    def feed(updated: str) -> str:
        return ('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">'
                "<title>Coast Weekly</title><id>urn:c</id><updated>x</updated><entry>"
                "<title>Ferry service to Lundy Island resumes</title><id>urn:ferry</id>"
                f'<link href="{{base}}/ferry.html"/><updated>{updated}</updated>'
                "<summary>Ferry.</summary></entry></feed>")

    site.feeds["atom.xml"] = feed("2026-12-01T08:00:00Z")
    first = read(store, site.url("atom.xml"))
    [article] = store.list_articles()
    story = article.story
    title, body, more = BODIES["ferry"]
    for n, stamp in enumerate(("2026-12-01T12:00:00Z", "2026-12-01T18:00:00Z"), 1):
        site.pages["ferry"] = PAGE.format(title=title, body=body,
                                          more=more + f" Update {n}: sailings added.")
        site.feeds["atom.xml"] = feed(stamp)
        got = read(store, site.url("atom.xml"))
        assert [r.status for r in got.results] == ["updated"], got.results
        [now] = store.list_articles()
        assert now.id == article.id and now.story == story
        assert f"Update {n}" in store.get_article(now.id).text
    assert first.results[0].status == "added"


def test_feed_dates_keep_their_own_day() -> None:
    assert _day("Tue, 01 Dec 2026 23:30:00 -0500").isoformat() == "2026-12-01"
    assert _day("2026-12-01T23:30:00-05:00").isoformat() == "2026-12-01"
    assert _day("2026-12-01T23:30:00Z").isoformat() == "2026-12-01"
    assert _day("soon") is None and _day("") is None
    assert parse(b'{"version": "https://jsonfeed.org/version/1", "items": []}', "x").kind \
        == "json"


# -- watching ---------------------------------------------------------------------------


def test_a_feeds_file_names_feeds_with_intervals_and_outlets(tmp_path: Path) -> None:
    path = tmp_path / "feeds.txt"
    path.write_text("# ours\nhttps://a.example/rss\nhttps://b.example/feed.xml 30m BBC News\n"
                    "https://a.example/rss 2h\n\n", encoding="utf-8")
    assert load_feeds(path) == [FeedLine("https://a.example/rss"),
                                FeedLine("https://b.example/feed.xml", 1800, "BBC News")]
    for bad, said in (("ftp://x/feed", r"not an http\(s\) URL"), ("https://x/f 5s", "shortest")):
        with pytest.raises(ValueError, match=said):
            parse_line(bad)
    save_feeds(path, lambda feeds: [f for f in feeds if "a.example" not in f.url])
    assert path.read_text() == "# ours\nhttps://b.example/feed.xml 30m BBC News\n\n"
    save_feeds(path, lambda feeds: [FeedLine("https://b.example/feed.xml", 3600, "BBC"),
                                    FeedLine("https://c.example/atom")])
    assert path.read_text() == ("# ours\nhttps://b.example/feed.xml 60m BBC\n\n"
                                "https://c.example/atom 15m\n")


def test_the_watcher_polls_on_its_interval_and_backs_off_a_failing_feed(
        site: Site, store: ArticleStore, tmp_path: Path) -> None:
    site.feeds["rss.xml"] = rss([("ferry", "Ferry service to Lundy Island resumes",
                                  "Tue, 01 Dec 2026 10:00:00 GMT")])
    path = tmp_path / "feeds.txt"
    path.write_text(f"{site.url('rss.xml')} 10m Harbour\n{site.url('gone.xml')} 10m\n")
    now = [1000.0]
    lines: list[str] = []
    watcher = Watcher(store, store.settings, path, threading.Event(), say=lines.append,
                      clock=lambda: now[0], rng=random.Random(7))
    watcher.run(once=True)
    assert any(line.startswith("added") for line in lines), lines
    assert any("feed failed" in line and "gone.xml" in line and "HTTP 404" in line
               for line in lines)
    good, bad = site.url("rss.xml"), site.url("gone.xml")
    assert 540 <= watcher.due[good] - now[0] <= 660  # 10 minutes ±10%
    assert 1080 <= watcher.due[bad] - now[0] <= 1320  # twice that after one failure
    for _ in range(12):
        watcher.poll(FeedLine(bad, 600))
    assert watcher.due[bad] - now[0] <= MAX_BACKOFF * 1.1  # capped
    hits = site.hits["/rss.xml"]
    watcher.run(once=True)  # nothing is due yet
    assert site.hits["/rss.xml"] == hits
    now[0] += 700
    watcher.run(once=True)
    assert site.hits["/rss.xml"] == hits + 1


def test_watch_stops_on_sigterm_between_entries_with_nothing_half_written(
        site: Site, tmp_path: Path) -> None:
    """`python -m ingest watch` in its own process: SIGTERM while a slow page is coming
    ends it with exit 0; the store checks clean and the next run fetches the rest."""
    site.feeds["rss.xml"] = rss([(slug, title, f"Tue, 0{n} Dec 2026 10:00:00 GMT")
                                 for n, (slug, (title, _, _)) in enumerate(BODIES.items(), 1)])
    site.delay["bakery"] = 4.0
    feeds = tmp_path / "feeds.txt"
    feeds.write_text(site.url("rss.xml") + "\n")
    data = tmp_path / "data"
    env = clean_env(RAG_DATA_DIR=str(data), RAG_COLLECTION="watched")
    proc = subprocess.Popen([sys.executable, "-m", "ingest", "watch", str(feeds),
                             "--allow-private"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while site.hits.get("/bakery.html", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert site.hits.get("/bakery.html"), "the watcher never reached the slow page"
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopping (SIGTERM)" in err and "Traceback" not in err
    check = subprocess.run([sys.executable, "-m", "ingest", "--data-dir", str(data),
                            "--collection", "watched", "check"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    site.delay.clear()
    store = ArticleStore(Settings(data_dir=data, collection="watched",
                                  fetch_allow="127.0.0.1"))
    before = {a.title for a in store.list_articles()}
    # the entry in hand was written whole (the newest; the slow second, if the stop came
    # while it was coming); the oldest was never reached
    assert BODIES["lighthouse"][0] in before and BODIES["ferry"][0] not in before, before
    got = read(store, site.url("rss.xml"))
    assert len(store.list_articles()) == 3 and got.report.count("added") == 3 - len(before)


# -- the app's Feeds panel -------------------------------------------------------------


def test_the_app_follows_a_feed_an_editor_adds_and_readers_may_not(site: Site,
                                                                   tmp_path: Path) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    from support.servers import free_port

    from web import server as web_server
    from web.service import NewsApp

    site.feeds["rss.xml"] = rss([("ferry", "Ferry service to Lundy Island resumes",
                                  "Tue, 01 Dec 2026 10:00:00 GMT")])
    settings = Settings(data_dir=tmp_path / "data", collection="appfeeds",
                        fetch_allow="127.0.0.1")
    news = NewsApp(settings)
    port = free_port()
    demo = web_server.start(news, "127.0.0.1", port, users="ed:pw:editor,rita:pw:reader",
                            block=False)
    url = f"http://127.0.0.1:{port}/"
    try:
        reader = Client(url, auth=("rita", "pw"), verbose=False)
        with pytest.raises(AppError, match="Only editors"):
            reader.predict(site.url("rss.xml"), "", "", api_name="/follow_feed")
        editor = Client(url, auth=("ed", "pw"), verbose=False)
        for bad, said in (("file:///etc/passwd", "http:// or https://"),
                          (site.url("rss.xml") + " 5s", "http:// or https://")):
            with pytest.raises(AppError, match=said):
                editor.predict(bad, "", "", api_name="/follow_feed")
        with pytest.raises(AppError, match="shortest interval"):
            editor.predict(site.url("rss.xml"), "5s", "", api_name="/follow_feed")
        said = editor.predict(site.url("rss.xml"), "10m", "Harbour", api_name="/follow_feed")
        assert said.startswith("added " + site.url("rss.xml") + " 10m Harbour")
        deadline = time.monotonic() + 60
        # (the article, not its chunks: they are written before its record is committed)
        while not news.store.list_articles() and time.monotonic() < deadline:
            time.sleep(0.2)
        [article] = news.store.list_articles()
        assert article.title == "Ferry service to Lundy Island resumes"
        assert article.outlet == "Harbour"  # the feed's configured name, over its title
        [row] = news.feeds.rows()
        assert row[:3] == [site.url("rss.xml"), "10m", "Harbour"] and row[3] and not row[4]
        assert "removed" in editor.predict(site.url("rss.xml"), api_name="/unfollow_feed")
        assert news.feeds.rows() == [] and news.store.list_articles()  # its articles stay
    finally:
        news.feeds.close()
        demo.close()


# -- hostile feeds (issue 27) ------------------------------------------------------------


def deep_json() -> bytes:
    return (b'{"version": "https://jsonfeed.org/version/1.1", "items": '
            + b"[" * 100_000 + b"]" * 100_000 + b"}")


def deep_xml() -> bytes:
    """1.4 MB of nesting inside a channel (feedparser took ~15-60 s on it)."""
    return (b'<?xml version="1.0"?><rss version="2.0"><channel><title>Deep</title>'
            + b"<x>" * 233_000 + b"</x>" * 233_000 + b"</channel></rss>")


# what each hostile feed now gives in `ingest feed`: its one line starts so, and holds this
HOSTILE = {
    "json_wrong_types.json": ("feed ", "fields of the wrong type left out: author, authors, "
                              "content_html, date_modified, date_published, id, summary, "
                              "title, url; 3 item(s) that are not objects skipped"),
    "json_items_not_a_list.json": ("feed failed", "its items are a string, not a list"),
    "json_not_utf8.json": ("feed failed", "not a readable JSON Feed: 'utf-8' codec"),
    "xml_encoding_name_not_utf8.xml": ("feed failed", "its encoding can't be read"),
    "xml_unknown_encoding.xml": ("feed failed", "its encoding can't be read"),
    "xml_declared_utf8_is_latin1.xml": ("feed ", "rss, 1 entries"),
    "xml_undefined_entities.xml": ("feed ", "malformed XML (line 2: undefined entity)"),
    "xml_truncated.xml": ("feed ", "malformed XML"),
    "xml_billion_laughs.xml": ("feed ", "malformed XML (line 5: undefined entity)"),
    "xml_xxe.xml": ("feed ", "rss, 1 entries"),
    "rss_javascript_link.xml": ("feed ", "2 link(s) that are not http(s) URLs left out"),
    "rss_control_characters.xml": ("feed ", "rss, 1 entries"),
    "sitemap_xxe.xml": ("feed failed", "not a readable sitemap: undefined entity"),
    "not_a_feed.bin": ("feed failed", "not a readable feed: malformed XML"),
    "deep.json": ("feed failed", "not a readable JSON Feed: nested too deeply"),
    "deep.xml": ("feed failed", "its XML nests more than 256 elements deep"),
}


def test_every_hostile_feed_is_one_line_in_the_cli_never_a_traceback(
        site: Site, store: ArticleStore, capsys: pytest.CaptureFixture[str]) -> None:
    for name in HOSTILE:
        site.feeds[name] = (FIXTURES / name).read_bytes() if (FIXTURES / name).exists() \
            else {"deep.json": deep_json, "deep.xml": deep_xml}[name]()
    urls = [site.url(name) for name in HOSTILE]
    started = time.monotonic()
    code = ingest_main(["--data-dir", str(store.settings.data_dir), "--collection", "feeds",
                        "feed", "--allow-private", *urls])
    seconds = time.monotonic() - started
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in out + err and "Error:" not in out + err
    lines = [line for line in (out + err).splitlines() if line.startswith("feed")]
    for name, (start, said) in HOSTILE.items():
        [line] = [x for x in lines if x.split(": ", 1)[0].endswith("/" + name)]
        assert line.startswith(start) and said in line, line
    assert seconds < 60, seconds  # the deep XML alone took 15-60 s
    store = ArticleStore(store.settings)  # as the CLI left it
    texts = [(a.title, a.outlet or "", store.get_article(a.id).text, a.url or "")
             for a in store.list_articles()]
    everything = " ".join(" ".join(t) for t in texts)
    assert "root:" not in everything and "lollollol" not in everything  # XXE, laughs
    assert "javascript:" not in everything and "data:text" not in everything
    fields = " ".join(f"{a.title} {a.outlet} {a.authors}" for a in store.list_articles())
    assert not any(c in fields for c in "\u2028\u2029\x85\x00\n"), fields
    assert "Line one line two." in everything and "Ann Lee" in fields
    assert "Ferry returns" in fields and "Leak &xxe;" in fields  # the entity left as is
    assert "Village bakery wins national bread award" in everything  # the good JSON item
    state = FeedState.of(store.settings).load()
    assert "items are a string" in (state[site.url("json_items_not_a_list.json")]
                                    .last_error or "")


def test_parsing_is_bounded_in_time(site: Site) -> None:
    started = time.monotonic()
    with pytest.raises(FeedError, match="nests more than 256"):
        parse(deep_xml(), "http://x.example/deep.xml")
    assert time.monotonic() - started < 10
    big = rss([(f"s{n}", f"Story {n}", "Sun, 01 Nov 2026 10:00:00 GMT")
               for n in range(4000)]).encode()
    started = time.monotonic()
    with pytest.raises(FeedError, match=r"parsing it took longer than 0.3 s \(0.\d MB\)"):
        parse(big, "http://x.example/big.xml", seconds=0.3)
    assert time.monotonic() - started < 5
    assert len(parse(big, "http://x.example/big.xml").entries) == 4000  # in the time given


def test_a_hostile_feed_or_a_bug_fails_that_feed_and_the_watcher_reads_the_others(
        site: Site, store: ArticleStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    """The wrong-typed JSON Feed killed the app's watcher ("the feed watcher stopped")."""
    import ingest.feeds
    import ingest.watch

    site.feeds["wrong.json"] = (FIXTURES / "json_wrong_types.json").read_bytes()
    site.feeds["items.json"] = (FIXTURES / "json_items_not_a_list.json").read_bytes()
    site.feeds["buggy.xml"] = rss([("lighthouse", BODIES["lighthouse"][0],
                                    "Tue, 01 Dec 2026 10:00:00 GMT")])
    site.feeds["store.xml"] = site.feeds["buggy.xml"]
    site.feeds["rss.xml"] = rss([("ferry", BODIES["ferry"][0], "Tue, 01 Dec 2026 10:00:00 GMT")])
    path = tmp_path / "feeds.txt"
    path.write_text("".join(site.url(n) + "\n" for n in
                            ("wrong.json", "items.json", "buggy.xml", "store.xml", "rss.xml")))
    real_parse, real_read = ingest.feeds.parse, ingest.watch.read_feeds

    def buggy_parse(data: bytes, url: str, *a: object, **k: object) -> object:
        if url.endswith("buggy.xml"):
            raise KeyError("a bug")  # something no one foresaw, in one feed's reading
        return real_parse(data, url, *a, **k)

    def failing_read(urls: list[str], *a: object, **k: object) -> object:
        if urls[0].endswith("store.xml"):
            raise RuntimeError("the store went away")  # outside the feed's own reading
        return real_read(urls, *a, **k)

    monkeypatch.setattr(ingest.feeds, "parse", buggy_parse)
    monkeypatch.setattr(ingest.watch, "read_feeds", failing_read)
    lines: list[str] = []
    now = [1000.0]
    watcher = Watcher(store, store.settings, path, threading.Event(), say=lines.append,
                      clock=lambda: now[0], rng=random.Random(3))
    watcher.run(once=True)
    titles = {a.title for a in store.list_articles()}
    assert {BODIES["ferry"][0], BODIES["bakery"][0]} <= titles, (titles, lines)
    state = FeedState.of(store.settings).load()
    assert state[site.url("wrong.json")].last_error is None  # read for what it has
    assert "items are a string" in state[site.url("items.json")].last_error
    assert state[site.url("buggy.xml")].last_error == \
        "unexpected error (KeyError); the log has the details"
    assert state[site.url("store.xml")].last_error == \
        "unexpected error (RuntimeError); the log has the details"
    for name in ("items.json", "buggy.xml", "store.xml"):  # each backed off, said once
        assert watcher.failures[site.url(name)] == 1
        assert sum(site.url(name) in line and "feed failed" in line for line in lines) == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_apps_watcher_is_restarted_whenever_it_dies_and_the_panel_says_so(
        site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import web.feeds
    from web.feeds import Feeds
    from web.limits import Limits

    settings = Settings(data_dir=tmp_path / "data", collection="supervised",
                        fetch_allow="127.0.0.1", feeds_file=tmp_path / "feeds.txt")
    (tmp_path / "feeds.txt").write_text(site.url("gone.xml") + " 1h\n")
    monkeypatch.setattr(web.feeds, "RESTART_WAIT", 0.05)
    runs: list[int] = []
    real = Watcher.run

    def dying(self: Watcher, once: bool = False) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise KeyError("the watcher's own bug")
        if len(runs) == 2:
            raise SystemExit  # what `except Exception` lets through: the thread ends
        real(self, once)

    monkeypatch.setattr(Watcher, "run", dying)
    feeds = Feeds(ArticleStore(settings), Limits(settings))
    try:
        assert feeds.status() == ""
        assert feeds.start()
        deadline = time.monotonic() + 30
        while (len(runs) < 2 or feeds._thread.is_alive()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert feeds.restarts == 1 and "KeyError" in feeds.last_death
        said = feeds.status()  # finds the thread gone and starts it again
        while len(runs) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(runs) == 3 and feeds._thread.is_alive()
        assert "stopped unexpectedly" in said and "started again (2 time(s)" in said
        while site.hits.get("/gone.xml", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert site.hits.get("/gone.xml")  # the feeds are read again
    finally:
        feeds.close()


def test_feed_fields_stay_one_line_and_a_bad_line_in_the_file_is_skipped_not_fatal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An Outlet with a newline wrote a second, unchecked line into feeds.txt; a line
    that is not a feed then emptied the panel and refused every change, naming the
    file's path."""
    from web.feeds import Feeds
    from web.limits import Limits

    path = tmp_path / "secret-server-dir" / "feeds.txt"
    settings = Settings(data_dir=tmp_path / "data", collection="feedfile", feeds_file=path)
    feeds = Feeds(ArticleStore(settings), Limits(settings))
    monkeypatch.setattr(feeds, "start", lambda: False)  # the file only: nothing is read
    for outlet, said in (("Harbour\nnot-a-url", "line break"),
                         ("Harbour\r\nhttps://evil.example/x", "line break"),
                         ("Harbour\u2028https://evil.example/x", "line break"),
                         ("Harbour\x00", "control character"),
                         ("Harbour # 2", "'#'")):
        with pytest.raises(ValueError, match=said):
            feeds.add("https://a.example/rss", "10m", outlet)
    for url in ("https://a.example/r\x0bss", "https://a.example/r\x01ss"):
        with pytest.raises(ValueError, match="URL"):
            feeds.add(url, "", "")
    assert not path.exists() or "evil" not in path.read_text()
    feeds.add("https://a.example/rss", "10m", "Harbour")
    with path.open("a", encoding="utf-8") as f:  # what an editor could add before
        f.write("not-a-url 10m\nhttps://b.example/feed 5s\nhttps://c.example/atom\n")
    assert [r[0] for r in feeds.rows()] == ["https://a.example/rss", "https://c.example/atom"]
    status = feeds.status()
    assert "2 line(s) that are not feeds" in status and "line 2" in status \
        and "line 3" in status and str(tmp_path) not in status
    assert read_feeds_file(path).problems == [
        "line 2: 'not-a-url' is not an http(s) URL; skipped",
        "line 3: '5s' is shorter than the shortest interval, 60 s; skipped"]
    assert feeds.add("https://d.example/rss", "", "Dock News").startswith("added")
    assert feeds.remove("https://a.example/rss").startswith("removed")
    for call in (lambda: feeds.remove("https://gone.example/x"),
                 lambda: feeds.add("javascript:alert(1)", "", "")):
        with pytest.raises(ValueError) as refused:
            call()
        assert str(tmp_path) not in str(refused.value) and "feeds.txt" not in str(refused.value)
    assert path.read_text().splitlines() == [
        "not-a-url 10m", "https://b.example/feed 5s", "https://c.example/atom",
        "https://d.example/rss 15m Dock News"]  # the bad lines kept as written
    said: list[str] = []
    watcher = Watcher(feeds.store, settings, path, threading.Event(), say=said.append)
    monkeypatch.setattr(watcher, "poll", lambda feed: None)
    watcher.run(once=True)
    watcher.run(once=True)
    assert said == ["feeds file line 1: 'not-a-url' is not an http(s) URL; skipped",
                    "feeds file line 2: '5s' is shorter than the shortest interval, 60 s; "
                    "skipped"]  # said once, not at every round


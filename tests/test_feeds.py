"""Feeds and sitemaps into the store: RSS, Atom, JSON Feed, a sitemap index with a
Google News sitemap, bad dates, a redirect, a 304, an entry whose page is gone, an
enormous feed (bounded), malformed XML (one line), an entry updated twice.

Everything is served by a test server on loopback, which the settings allow
explicitly (`fetch_allow="127.0.0.1"`); the articles are our own short texts.
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
from support import QuietHandler, QuietServer, clean_env

from ingest.cli import main as ingest_main
from ingest.feeds import SUMMARY_NOTE, FeedReport, FeedState, _day, parse, read_feeds
from ingest.fetch import FetchPolicy
from ingest.watch import (
    MAX_BACKOFF,
    FeedLine,
    Watcher,
    load_feeds,
    parse_line,
    save_feeds,
)
from rag.settings import Settings
from rag.store import ArticleStore

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
        self.feeds: dict[str, str] = {}
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
                    text = site.feeds[name].replace("{base}", site.base)
                    kind = "application/json" if name.endswith(".json") else "application/xml"
                    self.reply(200, text.encode(), {"Content-Type": kind,
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
    from support import free_port

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
        while not news.store.has_chunks() and time.monotonic() < deadline:
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

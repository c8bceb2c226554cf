"""The page's article list (`web.catalog`, issue 29): a small library is listed when
asked, a large one by a thread while the page shows the counts or the last list; the
page sends a browser at most `LIBRARY_SHOWN` rows and picker choices, newest first,
and a search finds the others."""

from __future__ import annotations

from datetime import date

import pytest
from support.stores import make_settings

import web.service
from ingest.chunking import chunk_article, embedding_text
from rag.records import Article
from rag.store.articles import ArticleStore
from web.catalog import Catalog
from web.service import NewsApp


def _write(store: ArticleStore, title: str, day: int, outlet: str = "Gazette") -> str:
    article = Article(text=f"{title}. The council met on Tuesday about {title.lower()}.",
                      title=title, outlet=outlet, published=date(2025, 3, day))
    chunks = chunk_article(article, store.settings)
    store.write_article(article, chunks,
                        store.embed([embedding_text(article, c) for c in chunks]), [])
    return article.id


@pytest.fixture(scope="module")
def news(tmp_path_factory: pytest.TempPathFactory) -> NewsApp:
    app = NewsApp(make_settings(tmp_path_factory.mktemp("catalog") / "data",
                                reader="heuristic"))
    for day, title in enumerate(["Harbour toll", "Tram depot", "Library roof",
                                 "Ferry timetable"], start=1):
        _write(app.store, title, day)
    return app


def test_a_small_library_is_listed_when_asked(news: NewsApp) -> None:
    catalog = Catalog(news.store)
    first = catalog.articles()
    assert first is not None and [a.title for a in first][:4] == [
        "Ferry timetable", "Library roof", "Tram depot", "Harbour toll"]
    assert not catalog.stale
    added = _write(news.store, "Bridge tolls", 20)
    try:
        assert catalog.stale
        now = catalog.articles()  # listed again at once: it is small
        assert now is not None and now[0].id == added and not catalog.stale
    finally:
        news.store.remove_article(added)


def test_a_large_library_is_listed_by_a_thread_and_the_last_list_shown_meanwhile(
        news: NewsApp) -> None:
    catalog = Catalog(news.store, sync_limit=2)  # "large" past two articles
    assert catalog.articles() is None  # the first listing is under way
    catalog.join(60)
    listed = catalog.articles()
    assert listed is not None and len(listed) == 4 and not catalog.stale

    added = _write(news.store, "Bridge tolls", 20)
    try:
        assert catalog.articles() == listed and catalog.stale  # the last, said stale
        catalog.join(60)
        now = catalog.articles()
        assert now is not None and now[0].id == added and not catalog.stale
        assert catalog.articles(wait=True) == now
    finally:
        news.store.remove_article(added)
    assert [a.title for a in catalog.articles(wait=True) or []] == [
        a.title for a in listed]  # wait: the current listing, whatever the size


def test_the_page_shows_the_newest_and_a_search_finds_the_rest(
        news: NewsApp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web.service, "LIBRARY_SHOWN", 2)
    rows, line = news.library_view()
    assert [r[0] for r in rows] == ["Ferry timetable", "Library roof"]
    assert line.startswith("the newest 2 in all shown (search to find others) · 4 article(s)")
    rows, line = news.library_view("harbour")
    assert [r[0] for r in rows] == ["Harbour toll"] and line.startswith("1 of 4 shown")
    rows, line = news.library_view("t")  # every title has a t: still the newest two
    assert len(rows) == 2 and line.startswith("the newest 2 matching shown")

    choices = news.article_choices()
    assert [label for label, _ in choices] == ["Ferry timetable (2025-03-04)",
                                               "Library roof (2025-03-03)"]
    harbour = news.library_view("harbour")[0][0][-1]
    kept = news.article_choices("tram", keep=[harbour])  # a picked one stays a choice
    assert [label.split(" (")[0] for label, _ in kept] == ["Tram depot", "Harbour toll"]
    assert news.outlet_choices() == ["Gazette"]


def test_before_the_first_listing_the_page_shows_the_counts(news: NewsApp) -> None:
    app = NewsApp(news.settings, engine=news.engine)
    app.catalog = Catalog(app.store, sync_limit=0)
    rows, line = app.library_view()
    assert rows == [] and line.startswith("4 article(s), ")
    assert "listing them" in line
    app.catalog.join(60)
    assert len(app.library_view()[0]) == 4


def test_api_filters_name_an_article_the_library_lacks_without_a_listing(
        news: NewsApp) -> None:
    from rag.answer.retrieve import Filters
    from web.service import UnknownFilter

    app = NewsApp(news.settings, engine=news.engine)
    app.catalog = Catalog(app.store, sync_limit=0)
    some = news.library_view("tram")[0][0][-1]
    assert app.held_filters(Filters(article_ids=[some])).article_ids == [some]
    with pytest.raises(UnknownFilter, match="no article 'nope'"):
        app.held_filters(Filters(article_ids=[some, "nope"]))
    assert app.held_filters(Filters(outlets=["gazette"])).outlets == ["Gazette"]

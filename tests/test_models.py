"""`Article`'s cached id and version, and the `file.jsonl#L<n>` path convention."""

from __future__ import annotations

from datetime import date

import pytest

import rag.records as models
from rag.records import Article, line_ref, split_line_ref


def test_id_and_version_are_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = models.article_id_for

    def counted(text: str, url: str | None) -> str:
        calls.append(text)
        return real(text, url)

    monkeypatch.setattr(models, "article_id_for", counted)
    article = Article(text="The council met again today to discuss the harbour wall.")
    first = article.id
    assert article.id == first and article.version == article.version
    assert len(calls) == 1


@pytest.mark.parametrize(("field", "value", "id_changes"), [
    ("url", "https://example.org/news/harbour-wall", True),
    ("text", "The council met again today to discuss the sea wall.", True),
    ("outlet", "Island Post", False),
    ("title", "Harbour wall", False),
    ("published", date(2024, 5, 1), False),
    ("authors", ["A. Writer"], False),
])
def test_assigning_a_field_updates_id_and_version(field: str, value: object,
                                                  id_changes: bool) -> None:
    article = Article(text="The council met again today to discuss the harbour wall.")
    old_id, old_version = article.id, article.version
    setattr(article, field, value)
    assert (article.id != old_id) is id_changes
    assert article.version != old_version
    fresh = Article(text="The council met again today to discuss the harbour wall.")
    setattr(fresh, field, value)
    assert (article.id, article.version) == (fresh.id, fresh.version)


def test_url_set_after_reading_gives_the_url_identity() -> None:
    """What ingest does: an article read from a page gets its URL (less tracking) later."""
    article = Article(text="Body text of the page, long enough to be an article.")
    text_id = article.id
    article.url = "https://example.org/a?utm_source=feed"
    tracked = article.id, article.version
    article.url = "https://example.org/a"
    assert article.id != text_id
    assert (article.id, article.version) == tracked  # tracking never makes a new version
    assert article == Article(text=article.text, url="https://example.org/a")


def test_id_and_version_cannot_be_assigned() -> None:
    article = Article(text="Some text of an article about ferries and fares.")
    with pytest.raises(AttributeError):
        article.id = "abc"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        article.version = "abc"  # type: ignore[misc]


def test_line_refs() -> None:
    ref = line_ref("/data/feed.jsonl", 3)
    assert ref == "/data/feed.jsonl#L3"
    assert split_line_ref(ref) == ("/data/feed.jsonl", 3)
    assert split_line_ref("/data/feed.jsonl") == ("/data/feed.jsonl", None)
    assert split_line_ref("/data/a#L1/feed.jsonl#L12") == ("/data/a#L1/feed.jsonl", 12)
    assert split_line_ref("/data/notes#Lx") == ("/data/notes#Lx", None)

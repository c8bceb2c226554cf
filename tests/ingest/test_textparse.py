"""Metadata and clutter rules for plain-text articles, and the identity helpers."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ingest.textparse import find_date, is_clutter, parse_byline, parse_text
from rag.records import article_id_for, canonical_url
from rag.settings import Settings

CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"
SEED = CORPORA / "seed" / "iran-azerbaijan-baku-meeting.txt"


def test_seed_metadata_and_clean_body() -> None:
    parsed = parse_text(SEED.read_text(encoding="utf-8"))
    assert parsed.title == (
        "Iranian president Pezeshkian meets Azerbaijani leader Aliyev to improve ties"
    )
    assert parsed.authors == ["Anna Fadiah", "Hayu Andini"]
    assert parsed.published == date(2025, 4, 28)
    assert "![]()" not in parsed.body
    assert "Handout/Anadolu" not in parsed.body
    assert "By Anna Fadiah" not in parsed.body
    assert parsed.body.startswith("Iran and Azerbaijan move to repair relations")
    assert "Tensions and slow recovery after 2023 embassy attack" in parsed.body
    assert "\n\n" in parsed.body and "\n\n\n" not in parsed.body


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The summit took place on April 28, 2025 in Baku.", date(2025, 4, 28)),
        ("Published 3 March 2005", date(2005, 3, 3)),
        ("Updated: 2024-11-05T10:00:00Z", date(2024, 11, 5)),
        ("on Sept. 9th, 2021", date(2021, 9, 9)),
        ("Kick-off: Tuesday 1 March, 2000 GMT", None),  # a clock time, not a year
        ("on 31 February 2005", None),  # no such day
        ("in the summer of 2004", None),
    ],
)
def test_find_date(text: str, expected: date | None) -> None:
    assert find_date(text) == expected


def test_body_dates_need_on_in_the_lead() -> None:
    text = "Headline here\n\nProfits for the three months to 31 December 2004 rose 5%.\n\nMore."
    assert parse_text(text).published is None
    text = "Headline here\n\nThe two leaders met on 12 January 2005 in Paris.\n\nMore text."
    assert parse_text(text).published == date(2005, 1, 12)


@pytest.mark.parametrize(
    ("line", "authors"),
    [
        ("By Anna Fadiah and Hayu Andini", ["Anna Fadiah", "Hayu Andini"]),
        ("By Jane Doe, John Smith & Ann Lee", ["Jane Doe", "John Smith", "Ann Lee"]),
        ("BY Maria de Souza | Reuters", ["Maria de Souza"]),
        ("By declaring their assets, people would be able to pay less.", None),
        ("By any measure, New Yorker Dick Morris is a winner.", None),
    ],
)
def test_byline(line: str, authors: list[str] | None) -> None:
    assert parse_byline(line) == authors


@pytest.mark.parametrize(
    "line",
    [
        "![]() |",
        "A man walks past a mural in Tehran. (c) Handout/Anadolu |",
        "Protesters gather outside parliament. Photo: Getty Images",
        "Advertisement",
        "Share this article",
        "Image: AFP",
    ],
)
def test_clutter_lines(line: str) -> None:
    assert is_clutter(line)


@pytest.mark.parametrize(
    "line",
    [
        "The agency Reuters reported that the talks had stalled after a second day.",
        "Share prices rose 3% on Monday after the results were published.",
        "Subscribers to the service will pay more from April, the company said.",
    ],
)
def test_article_lines_are_kept(line: str) -> None:
    assert not is_clutter(line)


def test_markdown_is_stripped() -> None:
    parsed = parse_text(
        "# Big **news** today\n\n![alt](img.png)\n\nRead [the report](http://x.y) now, "
        "it says a lot about everything.\n\n- a list item with words\n",
        markdown=True,
    )
    assert parsed.title == "Big news today"
    assert "Read the report now" in parsed.body
    assert "http://x.y" not in parsed.body and "img.png" not in parsed.body
    assert "a list item with words" in parsed.body


def test_title_from_long_first_line() -> None:
    text = ("This pasted article starts with a long paragraph that has no headline at all, "
            "and it keeps going well past what any headline would be. Then a second sentence.")
    parsed = parse_text(text + "\n\nAnother paragraph follows here.")
    assert parsed.title.startswith("This pasted article starts")
    assert text in parsed.body  # the paragraph is not lost to the title


def test_canonical_url_and_ids() -> None:
    a = canonical_url("https://WWW.Example.com/news/story/?utm_source=x&id=3#comments")
    assert a == "https://example.com/news/story?id=3"
    assert article_id_for("text one", "https://example.com/a?utm_medium=y") == article_id_for(
        "different text", "https://example.com/a"
    )
    assert article_id_for("Same  text\n", None) == article_id_for("same text", None)
    assert article_id_for("same text", None) != article_id_for("other text", None)


def test_settings_validation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", "9123")
    settings = Settings()
    assert settings.data_dir == tmp_path
    assert (settings.chroma_host, settings.chroma_port) == ("127.0.0.1", 9123)
    with pytest.raises(ValueError, match="RAG_CHUNK_OVERLAP"):
        Settings(chunk_tokens=64, chunk_overlap=64)
    with pytest.raises(ValueError, match="collection names"):
        Settings(collection="a b")
    with pytest.raises(ValueError):
        Settings(chunk_tokens=400)  # past what MiniLM reads


def test_hard_wrapped_plain_text_is_joined() -> None:
    raw = (
        "Council reopens the old bridge\n\n"
        "The council said on 4 March 2024 that the old bridge would reopen to\n"
        "traffic next week, after two years of repairs that cost far more than\n"
        "planned.\n\n"
        "Residents welcomed the news.\n"
    )
    parsed = parse_text(raw)
    assert parsed.body.split("\n\n")[0] == (
        "The council said on 4 March 2024 that the old bridge would reopen to traffic next "
        "week, after two years of repairs that cost far more than planned."
    )
    assert parsed.published == date(2024, 3, 4)


def test_one_paragraph_per_line_is_not_joined() -> None:
    raw = "Short headline\nFirst paragraph, a short one.\nSecond paragraph here.\n"
    assert parse_text(raw).body == "First paragraph, a short one.\n\nSecond paragraph here."


def test_repeated_headline_is_dropped() -> None:
    parsed = parse_text("Bridge reopens\n\nThe bridge reopened today after repairs.",
                        title="Bridge  reopens")
    assert parsed.body == "The bridge reopened today after repairs."


def test_strip_tracking_keeps_the_rest() -> None:
    from rag.records import strip_tracking

    assert strip_tracking("https://www.Example.com/a/?utm_source=x&page=2&fbclid=1#top") == (
        "https://www.Example.com/a/?page=2"
    )

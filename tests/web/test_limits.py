"""Limits on what one uploaded source may cost: PDF pages and extraction time, and
parsing that stays linear on long text. No timing assertions here (they flake on a
busy machine); speed is measured by `python -m eval.bench_limits`."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.documents import pdf_pages

from ingest import formats
from ingest.formats import SourceError, read_pdf
from ingest.pipeline import read_source
from ingest.sources import Source
from ingest.textparse import _sub_bracketed, find_date
from rag.settings import get_settings


def _report(pages: int) -> bytes:
    """A headline page, then pages that each say which page they are."""
    body = [[f"Page {n} of the council report says the budget grew by {n} percent.",
             f"Councillors discussed item {n} at length before the vote."]
            for n in range(2, pages + 1)]
    return pdf_pages([["Council budget report"], *body])


@pytest.fixture
def extractions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts pages extracted (pypdf's own extraction still runs)."""
    from pypdf import PageObject

    calls: list[int] = []
    real = PageObject.extract_text

    def counted(self: PageObject, *args: object, **kwargs: object) -> str:
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PageObject, "extract_text", counted)
    return calls


def test_pdf_reads_only_the_first_pages_and_says_so(extractions: list[int]) -> None:
    [article] = read_pdf(_report(6), max_pages=3, timeout=60)
    assert "Page 3 of the council report" in article.text
    assert "Page 4" not in article.text and "Page 6" not in article.text
    assert len(extractions) == 3  # the pages past the limit are never extracted
    assert article.notes == ["read the first 3 of 6 pages (RAG_PDF_MAX_PAGES)"]


def test_pdf_within_the_page_limit_has_no_note() -> None:
    [article] = read_pdf(_report(3), max_pages=3, timeout=60)
    assert "Page 3 of the council report" in article.text and article.notes == []


def test_pdf_extraction_stops_at_the_time_limit(monkeypatch: pytest.MonkeyPatch,
                                                extractions: list[int]) -> None:
    """A fake clock that advances 10 s per page extracted: deterministic, no sleeping."""
    from pypdf import PageObject

    clock = [0.0]
    counted = PageObject.extract_text

    def slow(self: PageObject, *args: object, **kwargs: object) -> str:
        clock[0] += 10.0
        return counted(self, *args, **kwargs)

    monkeypatch.setattr(PageObject, "extract_text", slow)
    monkeypatch.setattr(formats, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    with pytest.raises(SourceError) as err:
        read_pdf(_report(8), max_pages=300, timeout=25)
    assert str(err.value) == "PDF text extraction took longer than 25 s (RAG_PDF_TIMEOUT)"
    assert len(extractions) == 3  # stopped at the first check past 25 s, not at the end


def test_read_source_applies_the_settings_limits(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(_report(5))
    settings = get_settings().model_copy(update={"pdf_max_pages": 2, "data_dir": tmp_path})
    [(label, article)] = read_source(Source("file", str(path), path.name), settings)
    assert label == "report.pdf" and not isinstance(article, SourceError)
    assert article.notes == ["read the first 2 of 5 pages (RAG_PDF_MAX_PAGES)"]
    assert "Page 2 of the council report" in article.text and "Page 3" not in article.text

    slow = settings.model_copy(update={"pdf_timeout": 1e-9})  # passed after the first page
    with pytest.raises(SourceError, match=r"longer than 1e-09 s \(RAG_PDF_TIMEOUT\)"):
        read_source(Source("file", str(path), path.name), slow)


# -- linear parsing ------------------------------------------------------------


def test_find_date_copies_no_text_before_each_date() -> None:
    """The quadratic version copied all the text before every date it rejected
    (`text[:match.start()][-20:]`). Memory, unlike time, shows that copy on any machine:
    its peak was the text's size; only a 20-character window may be looked at."""
    text = "Figures to 31 December 2004 were revised. " * 5000  # 5,000 rejected dates
    find_date("warm up on 1 March 2000", after_on=True)
    tracemalloc.start()
    try:
        assert find_date(text, after_on=True) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(text) // 10, peak
    assert find_date(text + "It reopened on Monday, 2 June 2025.", after_on=True).isoformat() \
        == "2025-06-02"


_IMAGE_MARKUP = re.compile(r"!\[[^\]]*\]\([^)]*\)")  # the regexes `_sub_bracketed` replaced
_MD_LINK = re.compile(r"\[([^\]]+)\]\((?:[^)]*)\)")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="![]()ab x-", max_size=80) | st.text(max_size=40))
def test_bracket_removal_matches_the_regexes_it_replaced(line: str) -> None:
    """Same output as the quadratic regexes (each unclosed `![` rescanned the line)."""
    assert _sub_bracketed(line, "![", keep_text=False) == _IMAGE_MARKUP.sub("", line)
    assert _sub_bracketed(line, "[", keep_text=True) == _MD_LINK.sub(r"\1", line)


def test_pdf_lines_rejoin_with_hyphens_and_paragraph_ends() -> None:
    text = "The council voted to build twelve kilo-\nmetres of lanes across the\ncity.\n\nNext"
    assert formats._unwrap_pdf_lines(text) == (
        "The council voted to build twelve kilometres of lanes across the city.\nNext")

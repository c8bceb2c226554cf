"""The shared tokenising: what counts as the same word."""

from __future__ import annotations

from rag.text import content_terms


def test_possessives_match_their_name_with_either_apostrophe() -> None:
    straight = content_terms("Azerbaijan's ties with Iran's rival")
    curly = content_terms("Azerbaijan’s ties with Iran’s rival")
    assert straight == curly == content_terms("Azerbaijan ties with Iran rival")
    assert "azerbaijan" in curly and "iran" in curly

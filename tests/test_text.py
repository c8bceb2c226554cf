"""The shared tokenising: what counts as the same word."""

from __future__ import annotations

from rag.text import content_terms


def test_possessives_match_their_name_with_either_apostrophe() -> None:
    straight = content_terms("Azerbaijan's ties with Iran's rival")
    curly = content_terms("Azerbaijan’s ties with Iran’s rival")
    assert straight == curly == content_terms("Azerbaijan ties with Iran rival")
    assert "azerbaijan" in curly and "iran" in curly


def test_a_question_about_money_needs_a_sum_not_a_count() -> None:
    from rag.answer.draft.extractive import _has_type, _holds_answer

    question = "How much did Sky pay for the rights to the Oscars?"
    count = "The deal with Sky drew 2 million viewers to the Oscars."
    sums = ["Sky paid £3m for the rights.", "The rights cost $40 million.",
            "Sky paid 2.5bn yen for the rights."]
    assert not _has_type("numeric", count, question)
    assert not _holds_answer("numeric", count, question)
    assert all(_has_type("numeric", s, question) and _holds_answer("numeric", s, question)
               for s in sums)
    assert _has_type("numeric", count, "How many viewers watched the Oscars on Sky?")

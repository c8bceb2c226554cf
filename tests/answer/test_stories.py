"""Which story a question is about: asking back, one story per answer, no fragments."""

from __future__ import annotations

from rag.answer.clarify import (
    Stories,
    about_story,
    decide,
    named_story,
    names_no_subject,
    wants_several,
)
from rag.answer.draft.extractive import _MID_SENTENCE
from rag.types import Passage


def _p(article: str, title: str, text: str, score: float) -> Passage:
    return Passage(chunk_id=f"{article}:v:0", article_id=article, text=text, start=0,
                   end=len(text), score=score, title=title, published="2005-02-01")


FIAT = _p("fiat", "GM pays $2bn to evade Fiat buyout",
          "The relationship between Fiat and General Motors soured after Fiat sold half "
          "its finance arm in Turin.", 0.61)
IRAN = _p("iran", "Iranian president Pezeshkian meets Azerbaijani leader Aliyev",
          "Relations between Iran and Azerbaijan soured over Baku's ties with Israel.", 0.39)
IRAN2 = _p("iran2", "Aliyev and Pezeshkian agree to reopen embassy",
           "Azerbaijan will reopen its embassy in Tehran, Aliyev told Pezeshkian in Baku.", 0.35)
WOLVES = _p("wolves", "Wolves appoint Hoddle as manager",
            "That relationship turned sour at Wolverhampton before Glenn Hoddle arrived.", 0.30)


def test_questions_without_a_subject() -> None:
    for q in ("why did relations sour?", "Who won?", "How much did it cost?",
              "Why did the deal collapse?", "Why won't she resign?",
              "Who won best director?"):
        assert names_no_subject(q), q
    for q in ("Why did relations between Iran and Azerbaijan sour?", "Who won in 2004?",
              "What did the Chinese government do to internet cafes?",
              "How many internet cafes did the authorities shut?"):
        assert not names_no_subject(q), q
    assert wants_several("Compare the two deals") and not wants_several("Who won?")


def test_a_subjectless_question_over_several_stories_is_asked_back() -> None:
    choices = decide("why did relations sour?", [FIAT, IRAN, IRAN2, WOLVES]).choices
    assert [c.article_id for c in choices] == ["fiat", "iran", "wolves"]  # iran2: same story
    assert choices[1].title.startswith("Iranian president") and choices[1].published
    question, title = named_story(choices[1].question)
    assert question == "why did relations sour?" and title == IRAN.title
    assert named_story("Why did relations sour?") == ("Why did relations sour?", None)
    assert about_story("who won", "A  title") == "who won? (story: A title)"


def test_no_question_back_when_the_question_names_its_subject_or_one_story_leads() -> None:
    assert decide("Why did relations between Fiat and GM sour?", [FIAT, IRAN, WOLVES]).choices == []
    assert decide("why did relations sour?", [FIAT, WOLVES.model_copy(update={"score": 0.2})]
                  ).choices == []  # the runner-up is far behind: answer from the leader
    assert decide("why did relations sour?", [IRAN, IRAN2]).choices == []  # one story


def test_a_word_only_the_leading_story_uses_is_a_subject() -> None:
    harbour = _p("harbour", "Harbour plan approved",
                 "The breakwater will cost 40 million dollars, the Harbour Authority said.", 0.5)
    museum = _p("museum", "Glacier museum opens", "The museum cost 12 million euros.", 0.45)
    assert decide("How much will the breakwater cost?", [harbour, museum]).choices == []
    assert len(decide("How much did it cost?", [harbour, museum]).choices) == 2


def test_same_story_needs_shared_names() -> None:
    stories = Stories([FIAT, IRAN, IRAN2, WOLVES])
    assert stories.same("iran", "iran2") and not stories.same("iran", "fiat")
    assert not stories.same("fiat", "wolves")


def test_a_chunk_that_starts_mid_sentence_gives_no_candidate() -> None:
    assert _MID_SENTENCE.match("won the men's event with a season's best of 7.95m.")
    assert not _MID_SENTENCE.match("Holmes won the men's event.")
    assert not _MID_SENTENCE.match('"England have a fantastic record," he said.')
    assert not _MID_SENTENCE.match("£5m was paid.")
    assert not _MID_SENTENCE.match('<img src=x> The breakwater will cost 40 million dollars.')


PUB = _p("pub", "Police urge pub closure power",
         "Police want the power to shut pubs whose relations with neighbours are poor, "
         "the Home Office said.", 0.36)


def test_only_stories_whose_passages_could_answer_are_offered() -> None:
    answers = {"fiat", "iran"}
    decision = decide("why did relations sour?", [FIAT, IRAN, PUB, IRAN2, WOLVES],
                      lambda ps: {p.article_id for p in ps} <= answers)
    assert [c.article_id for c in decision.choices] == ["fiat", "iran"]
    assert not decision.refused


def test_one_story_that_could_answer_is_answered_from_and_none_is_refused() -> None:
    checked: list[set[str]] = []

    def iran_only(ps: list[Passage]) -> bool:
        checked.append({p.article_id for p in ps})
        return {p.article_id for p in ps} == {"iran"}

    decision = decide("why did relations sour?", [FIAT, IRAN, PUB, WOLVES], iran_only)
    assert decision.choices == [] and decision.passages == [IRAN]
    assert checked == [{"fiat"}, {"iran"}, {"pub"}, {"wolves"}]  # each story on its own
    refused = decide("why did relations sour?", [FIAT, PUB, WOLVES], lambda ps: False)
    assert refused.refused and refused.choices == [] and refused.passages == []
    # A question with a subject is not for `decide` to refuse: the reader answers it.
    named = decide("Why did relations between Fiat and GM sour?", [FIAT, PUB], lambda ps: False)
    assert named.passages == [FIAT, PUB] and not named.refused


def test_the_runner_up_among_stories_that_could_answer_must_be_close() -> None:
    far = WOLVES.model_copy(update={"score": 0.2})
    checked: list[str] = []

    def not_the_pub(ps: list[Passage]) -> bool:
        checked.append(ps[0].article_id)
        return ps[0].article_id != "pub"

    decision = decide("why did relations sour?", [FIAT, PUB, far], not_the_pub)
    assert decision.choices == [] and decision.passages == [FIAT]
    assert checked == ["fiat"]  # neither other is within `close` of it: not checked

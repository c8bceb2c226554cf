"""The engine's steps alone, and its fallback chain with stand-in answerers: no LLM
server, no ingest (retrieval is replaced by fixed passages; the support scorer and
the extractive answerer are the real ones)."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from rag.answer.draft.llm import LLMError, parse_answer
from rag.answer.engine import UNSUPPORTED, Engine, assemble, condense, stands, verify_draft
from rag.answer.request import Ask
from rag.answer.retrieve import StaticRetriever
from rag.dates.parse import DateFilter
from rag.settings import Settings
from rag.types import REFUSAL, Checked, Claim, Draft, Passage

TEXT = ("Iran and Azerbaijan agreed on Monday to reopen the border crossing at Astara. "
        "The crossing had been closed for two years after the embassy attack in Tehran. "
        "Officials said trade through Astara would resume within a month.")
PASSAGES = [Passage(chunk_id="a1:v:0", article_id="a1", text=TEXT, start=0, end=len(TEXT),
                    score=1.0, title="Border reopens", path="/data/border.txt")]
QUESTION = "Why had the Astara border crossing been closed?"
SUPPORTED = "The crossing had been closed for two years after the embassy attack in Tehran. [1]"
INVENTED = "The border was closed because of a volcanic eruption in 1850. [1]"


class FakeLLM:
    """An `Answerer` standing in for the model: writes `text` word by word, or fails."""

    mode = "llm"
    model = "fake-model"
    streams_text = True
    must_be_supported = True
    refusal_stands = True
    takes_window = False

    def __init__(self, text: str = SUPPORTED, fail_after: int | None = None,
                 condense_fails: bool = False) -> None:
        self.text, self.fail_after, self.condense_fails = text, fail_after, condense_fails
        self.drafted = 0

    def condense(self, question: str, history: list[dict[str, Any]]) -> str:
        if self.condense_fails:
            raise LLMError("cannot reach the LLM endpoint")
        return "Why had the Astara border crossing between Iran and Azerbaijan been closed?"

    def draft(self, question: str, passages: list[Passage],
              window: DateFilter | None = None) -> Generator[str, None, Draft]:
        self.drafted += 1
        for i, word in enumerate(self.text.split(" ")):
            if self.fail_after is not None and i == self.fail_after:
                raise LLMError("the LLM did not finish within 1 s (RAG_LLM_TIMEOUT)")
            yield word + " "
        return parse_answer(self.text)


def _over(settings: Settings, passages: list[Passage]) -> Engine:
    """An engine whose retrieval always gives these passages."""
    return Engine.from_settings(settings, retriever=StaticRetriever(passages))


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=Path(tmp_path_factory.mktemp("steps")), collection="steps")


def _engine(settings: Settings, llm: FakeLLM) -> Engine:
    return Engine.from_settings(settings, retriever=StaticRetriever(PASSAGES),
                                llm_answerer=llm)  # type: ignore[arg-type]


def _run(engine: Engine, **kw: Any) -> tuple[list[str], Any]:
    stream = engine.stream(Ask(QUESTION, mode="llm", **kw))
    deltas = list(stream)
    return deltas, stream.result


def test_a_supported_model_answer_stands_and_is_not_sent_twice(settings: Settings) -> None:
    deltas, answer = _run(_engine(settings, FakeLLM()))
    assert "".join(deltas).strip() == SUPPORTED
    assert answer.mode == "llm" and answer.model == "fake-model" and not answer.notice
    assert [s.citations for s in answer.sentences] == [[1]] and answer.sentences[0].supported
    assert answer.citations[0].quote in TEXT and answer.citations[0].n == 1


def test_a_broken_off_model_answer_falls_back_with_a_notice(settings: Settings) -> None:
    deltas, answer = _run(_engine(settings, FakeLLM(fail_after=3)))
    assert len(deltas) == 4  # three words went out, then the replacement
    assert deltas[-1].startswith("\n\n") and deltas[-1].strip() == answer.answer
    assert answer.mode == "extractive" and answer.model is None
    assert answer.notice.endswith("; showing the extractive answer instead")
    assert "Tehran" in answer.answer


def test_an_unsupported_model_answer_falls_back_but_names_the_model(settings: Settings
                                                                   ) -> None:
    deltas, answer = _run(_engine(settings, FakeLLM(text=INVENTED)))
    assert answer.mode == "extractive" and answer.model == "fake-model"
    assert answer.notice == UNSUPPORTED
    assert "volcanic" not in answer.answer and deltas[-1].strip() == answer.answer


TWO = ("The crossing had been closed for two years after the embassy attack in Tehran [2]. "
       "Officials said trade through Astara would resume within a month [2].")
PASSAGES_2 = [Passage(chunk_id="b0:v:0", article_id="b0", text="An unrelated passage on tea.",
                      start=0, end=28, score=1.0, title="Tea"), PASSAGES[0]]


def test_a_checked_stream_sends_only_verified_sentences_in_the_answers_numbering(
        settings: Settings) -> None:
    """The model cites passage [2]; what goes out is the answer's [1], sentence by
    sentence, and together exactly the answer: nothing to take back."""
    engine = Engine.from_settings(settings, retriever=StaticRetriever(PASSAGES_2),
                                  llm_answerer=FakeLLM(text=TWO))  # type: ignore[arg-type]
    stream = engine.stream(Ask(QUESTION, mode="llm", checked=True))
    deltas = list(stream)
    answer = stream.result
    assert answer.mode == "llm" and not answer.notice
    assert "".join(deltas) == answer.answer
    sent = [d for d in deltas if d]
    assert len(sent) == 2 and sent[0].endswith("Tehran. [1]")  # the first before the end
    assert [c.n for c in answer.citations] == [1, 2]  # each sentence's own span
    assert len(deltas) > len(sent)  # "" between the model's words: a place to stop


def test_a_checked_stream_sends_nothing_of_a_rejected_draft(settings: Settings) -> None:
    stream = _engine(settings, FakeLLM(text=INVENTED)).stream(Ask(QUESTION, mode="llm",
                                                                  checked=True))
    deltas = list(stream)
    answer = stream.result
    assert answer.notice == UNSUPPORTED and "volcanic" not in "".join(deltas)
    assert "".join(deltas) == answer.answer


def test_closing_a_checked_stream_closes_the_models_draft(settings: Settings) -> None:
    closed = []

    class Slow(FakeLLM):
        def draft(self, question: str, passages: list[Passage],
                  window: DateFilter | None = None) -> Generator[str, None, Draft]:
            try:
                yield from super().draft(question, passages, window)
            finally:
                closed.append(True)

    stream = _engine(settings, Slow(text=TWO)).stream(Ask(QUESTION, mode="llm", checked=True))
    next(iter(stream))
    stream.close()
    assert closed == [True]


def test_a_failed_condense_drops_the_llm_for_this_question(settings: Settings) -> None:
    llm = FakeLLM(condense_fails=True)
    history = [{"role": "user", "content": "What happened at the Astara crossing?"}]
    _, answer = _run(_engine(settings, llm), history=history)
    assert llm.drafted == 0 and answer.mode == "extractive"
    assert answer.notice == "cannot reach the LLM endpoint; answered without the LLM"


def test_condense_keeps_the_rule_rewrite_unless_the_model_gives_a_plausible_one() -> None:
    history = [{"role": "user", "content": "What happened at the Astara crossing?"}]
    assert condense("why?", None, FakeLLM()) == "why?"  # no history: nothing to condense
    assert "Azerbaijan" in condense("why?", history, FakeLLM())

    class Chatty(FakeLLM):
        def condense(self, question: str, history: list[dict[str, Any]]) -> str:
            return "The answer to this question is:"

    rewritten = condense("why?", history, Chatty())
    assert "Astara" in rewritten and "answer to this" not in rewritten


def test_stands_check_and_assemble() -> None:
    refused = Draft(refused=True, notice="the library is empty")
    assert stands(refused, [], FakeLLM()) and verify_draft(refused, PASSAGES, None) == []  # type: ignore[arg-type]
    assert not stands(Draft(claims=[Claim(text="x", passages=[1])]),
                      [Checked(text="x", supported=False)], FakeLLM())
    answer = assemble("q?", "q?", refused, [], PASSAGES, "llm", "m", ["", "a", refused.notice])
    assert answer.answer == REFUSAL and answer.refused and answer.citations == []
    assert answer.notice == "a; the library is empty"
    assert [r.chunk_id for r in answer.retrieved] == ["a1:v:0"]
    assert answer.to_json()["retrieved"][0]["file_path"] == "/data/border.txt"


def test_a_subjectless_question_is_asked_back_and_a_choice_answers_from_its_story(
        settings: Settings) -> None:
    other = ("The border crossing at the Fiat plant in Turin was closed in 2003 after Fiat "
             "and General Motors fell out.")
    engine = _over(settings, [*PASSAGES, Passage(
        chunk_id="b1:v:0", article_id="b1", text=other, start=0, end=len(other), score=0.9,
        title="GM pays Fiat")])
    stream = engine.stream(Ask("Why was the crossing closed?", mode="extractive"))
    deltas = list(stream)
    asked = stream.result
    assert [c.article_id for c in asked.clarify] == ["a1", "b1"]
    assert deltas == [asked.answer] and asked.answer.startswith("Which story do you mean?")
    assert not asked.refused and asked.citations == [] and asked.to_json()["clarify"]
    answer = engine.ask(Ask(asked.clarify[0].question, mode="extractive"))
    assert not answer.clarify and not answer.refused
    assert {c.article_id for c in answer.citations} == {"a1"} and "Tehran" in answer.answer


def _passage(article: str, title: str, text: str, score: float) -> Passage:
    return Passage(chunk_id=f"{article}:v:0", article_id=article, text=text, start=0,
                   end=len(text), score=score, title=title)


SOURED = _passage(
    "iran", "Iran and Azerbaijan mend ties",
    "Relations between Iran and Azerbaijan soured after the attack on the Azerbaijani "
    "embassy in Tehran in January 2023. Baku's close ties with Israel angered Tehran.", 0.9)
# Retrieved for the meaning of "relations" or "sour", but neither says why any soured.
UNRELATED = [
    _passage("pub", "Police urge pub closure power",
             "Police want new powers to close pubs that keep their neighbours awake. "
             "Landlords said most pubs were well run.", 0.85),
    _passage("awards", "Bening makes awards breakthrough",
             "Annette Bening was named best actress by the film critics on Sunday. "
             "Her portrayal of family relations turning sour was overlooked five years "
             "ago.", 0.8),
]


def test_a_subjectless_question_offers_only_stories_that_could_answer(settings: Settings
                                                                      ) -> None:
    soured_too = _passage(
        "fiat", "GM pays Fiat to end alliance",
        "The relationship between Fiat and General Motors soured after Fiat sold half its "
        "finance arm in Turin.", 0.88)
    engine = _over(settings, [SOURED, *UNRELATED, soured_too])
    asked = engine.ask(Ask("why did relations sour?", mode="extractive"))
    assert [c.article_id for c in asked.clarify] == ["iran", "fiat"]


def test_one_story_that_could_answer_is_answered_and_none_is_refused(settings: Settings
                                                                     ) -> None:
    answer = _over(settings, [SOURED, *UNRELATED]).ask(Ask("why did relations sour?",
                                                           mode="extractive"))
    assert not answer.clarify and not answer.refused
    assert {c.article_id for c in answer.citations} == {"iran"} and "embassy" in answer.answer
    nothing = _over(settings, UNRELATED).ask(Ask("why did relations sour?", mode="extractive"))
    assert nothing.refused and not nothing.clarify and nothing.answer == REFUSAL
    assert [r.article_id for r in nothing.retrieved] == ["pub", "awards"]

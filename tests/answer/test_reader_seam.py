"""The reader seam (`rag.answer.readers.base`): the engine's extractive answer is what the injected
reader chose, cited where that sentence stands; the heuristic reader is the default.

Retrieval is replaced by fixed passages (no ingest); the picker, the support check
and the citations are the real ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rag.answer.draft.extractive import HeuristicReader, SentencePicker
from rag.answer.engine import Engine
from rag.answer.readers.base import Candidate, Pick, Question, Reading
from rag.answer.request import Ask
from rag.answer.retrieve import StaticRetriever
from rag.answer.verify import SupportScorer, verify
from rag.settings import Settings
from rag.types import REFUSAL, Claim, Passage, Span

ECHO = "The ministers met again in Baku to discuss the border."
TEXT = ("Iran and Azerbaijan agreed on Monday to reopen the border crossing at Astara. "
        f"{ECHO} The crossing had been closed for two years after the embassy attack in "
        f"Tehran. Officials said trade through Astara would resume within a month. {ECHO}")
OFFSET = 500  # the passage's place in its article
PASSAGES = [Passage(chunk_id="a1:v:0", article_id="a1", text=TEXT, start=OFFSET,
                    end=OFFSET + len(TEXT), score=1.0, title="Border reopens")]
QUESTION = "Why had the Astara border crossing been closed?"


class Chooser:
    """A reader that picks the candidates whose text holds `word` (none: it refuses),
    and records what it was asked."""

    name = "chooser"

    def __init__(self, word: str | None) -> None:
        self.word = word
        self.asked: list[tuple[Question, list[Candidate]]] = []

    warmed = 0

    def warm(self) -> None:
        self.warmed += 1

    def read(self, question: Question, candidates: list[Candidate]) -> Reading:
        self.asked.append((question, candidates))
        picks = [Pick(c, 0.75) for c in candidates if self.word and self.word in c.text]
        return Reading(picks=picks, reader=self.name)

    def passes_gates(self, question: Question, candidates: list[Candidate],
                     offered: bool = False) -> bool:
        return HeuristicReader().passes_gates(question, candidates, offered)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=Path(tmp_path_factory.mktemp("seam")), collection="seam",
                    llm_model=None, openai_base_url=None)


def engine_with(settings: Settings, reader: Any) -> Engine:
    return Engine.from_settings(settings, retriever=StaticRetriever(PASSAGES), reader=reader)


def test_the_injected_reader_chooses_the_sentences(settings: Settings) -> None:
    reader = Chooser("trade through Astara")
    answer = engine_with(settings, reader).ask(Ask(QUESTION, mode="extractive"))
    assert answer.answer.startswith("Officials said trade through Astara would resume")
    [(asked, candidates)] = reader.asked
    assert asked.text == QUESTION and asked.kind == "why" and asked.passages == PASSAGES
    # measured candidates, each a sentence of the passage where its offsets say
    assert all(TEXT[c.start:c.end] == c.text and c.vector is not None for c in candidates)
    assert any(c.typed for c in candidates)  # "after the embassy attack": a cause
    quote = answer.citations[0]
    start = OFFSET + TEXT.index("Officials said")
    assert (quote.start, quote.end) == (start, start + len(answer.sentences[0].text))


def test_a_reader_that_finds_no_answer_refuses(settings: Settings) -> None:
    answer = engine_with(settings, Chooser(None)).ask(Ask(QUESTION, mode="extractive"))
    assert answer.refused and answer.answer == REFUSAL and not answer.citations


def test_the_heuristic_reader_is_the_default_and_answers_the_why(settings: Settings) -> None:
    engine = engine_with(settings, None)
    assert isinstance(engine.extractive.reader, HeuristicReader)
    answer = engine.ask(Ask(QUESTION, mode="extractive"))
    assert "after the embassy attack in Tehran" in answer.answer


def test_a_claims_span_is_cited_where_the_reader_found_it() -> None:
    """The sentence occurs twice in the passage; the citation is the occurrence the
    reader chose (the second), not the first match of its text."""
    second = TEXT.rindex(ECHO)
    span = Span(passage=0, start=OFFSET + second, end=OFFSET + second + len(ECHO))
    [checked] = verify([Claim(text=ECHO, passages=[1], span=span)], PASSAGES, SupportScorer())
    assert checked.supported and checked.spans == [span]
    [found] = verify([Claim(text=ECHO, passages=[1])], PASSAGES, SupportScorer())
    assert found.spans[0].start == OFFSET + TEXT.index(ECHO)  # without a span: the first


def test_a_span_that_does_not_hold_the_claim_is_not_trusted() -> None:
    wrong = Span(passage=0, start=OFFSET, end=OFFSET + len(ECHO))  # other words there
    [checked] = verify([Claim(text=ECHO, passages=[1], span=wrong)], PASSAGES, SupportScorer())
    assert checked.spans[0].start == OFFSET + TEXT.index(ECHO)


def test_picked_claims_carry_span_and_score(settings: Settings) -> None:
    engine = engine_with(settings, None)
    picker = SentencePicker(engine.store.embed_model, reader=Chooser("trade through"))
    draft = picker.answer(QUESTION, PASSAGES)
    [claim] = draft.claims
    start = OFFSET + TEXT.index("Officials said")
    assert claim.span == Span(passage=0, start=start, end=start + len(claim.text))
    assert claim.score == 0.75 and claim.passages == [1]


def test_the_chat_shows_it_is_searching_before_the_reader_reads(settings: Settings) -> None:
    """The LLM reader takes seconds: the chat must not sit blank meanwhile. The first
    update (the pending answer) reaches the page before the reader is asked."""
    from web.service import NewsApp
    from web.ui.chat import chat

    shown: list[str] = []  # the answer's bubble at each update (the list is mutated)

    class Watching(Chooser):
        def read(self, question: Question, candidates: list[Candidate]) -> Reading:
            self.seen = list(shown)
            return super().read(question, candidates)

    reader = Watching("trade through Astara")
    app = NewsApp(settings, engine=engine_with(settings, reader))
    app.store.has_chunks = lambda: True  # the fixed passages stand in for a library
    for messages, *_ in chat(app, QUESTION, [], [], None, None, None, None, "extractive"):
        shown.append(messages[-1]["content"])
    assert reader.warmed == 1  # the app readied the reader before the first question
    assert reader.seen and "Searching the articles…" in reader.seen[0]
    assert "Officials said trade through Astara" in shown[-1]

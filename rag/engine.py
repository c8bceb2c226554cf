"""Question in, checked answer out: the one code path the CLI, the app and eval share.

    engine = Engine(settings)
    answer = engine.ask("why did relations sour?", history=[...], filters=Filters(...))
    stream = engine.stream(...)            # an AnswerStream
    for delta in stream: ...               # text as it is written
    stream.result                          # the Answer

The steps, each a function or object of its own: condense (a follow-up to a
standalone question) -> retrieve (`Retriever`) -> clarify (a question that names no
subject, over passages from several stories, gets a question back:
`rag.stories.clarify`) -> draft (the first answerer in the chain whose draft stands)
-> verify (`rag.citations.verify`) -> assemble (citation numbers assigned once, the
`Answer`).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

from rag.answerers import Answerer, ExtractiveAnswerer
from rag.citations import SupportScorer, number_citations, verify
from rag.conversation import rewrite, user_turns
from rag.keyword import KeywordIndex
from rag.llm import LLMAnswerer, LLMError, llm_configured
from rag.retrieval import Filters, Retriever
from rag.settings import Settings
from rag.store import ArticleStore
from rag.stories import clarify, of_story, story_of
from rag.streams import Streamed
from rag.text import content_terms
from rag.types import (
    REFUSAL,
    Answer,
    AnswerMode,
    Checked,
    Choice,
    Draft,
    Passage,
    RetrievalMode,
    Retrieved,
    answer_text,
)

AnswerStream = Streamed[str, Answer]
NO_LLM = "no LLM configured (set RAG_LLM_MODEL and OPENAI_BASE_URL/OPENAI_API_KEY)"
UNSUPPORTED = ("the model's answer was not supported by the articles; showing the extractive "
               "answer instead")


class Engine:
    def __init__(self, settings: Settings, store: ArticleStore | None = None,
                 llm_answerer: LLMAnswerer | None = None) -> None:
        self.settings = settings
        self.store = store or ArticleStore(settings)
        self.keyword = KeywordIndex.of(self.store)
        self._retrievers: dict[RetrievalMode, Retriever] = {}
        self._llm = llm_answerer
        self.extractive = ExtractiveAnswerer(self.store, self.keyword)

    # -- parts -------------------------------------------------------------

    def retriever(self, mode: RetrievalMode | str | None = None) -> Retriever:
        mode = RetrievalMode(mode or self.settings.retrieval_mode)
        if mode not in self._retrievers:
            self._retrievers[mode] = Retriever(self.store, mode, self.keyword)
        return self._retrievers[mode]

    def llm(self) -> LLMAnswerer | None:
        if self._llm is None and llm_configured(self.settings):
            self._llm = LLMAnswerer(self.settings)
        return self._llm

    def resolve_mode(self, mode: AnswerMode | str | None) -> AnswerMode:
        try:
            mode = AnswerMode(mode or self.settings.answer_mode)
        except ValueError:
            raise ValueError("answer mode must be one of "
                             + ", ".join(m.value for m in AnswerMode)) from None
        if mode == AnswerMode.AUTO:
            configured = llm_configured(self.settings) or self._llm is not None
            return AnswerMode.LLM if configured else AnswerMode.EXTRACTIVE
        return mode

    def answerers(self, mode: AnswerMode | str | None = None) -> tuple[list[Answerer], str]:
        """The fallback chain for a mode (the LLM, then the extractive answerer), and a
        notice when the mode asked for an LLM that is not configured."""
        if self.resolve_mode(mode) == AnswerMode.LLM:
            llm = self.llm()
            if llm is None:
                return [self.extractive], NO_LLM
            return [llm, self.extractive], ""
        return [self.extractive], ""

    # -- asking ------------------------------------------------------------

    def ask(self, question: str, **kwargs: Any) -> Answer:
        return self.stream(question, **kwargs).result

    def stream(
        self,
        question: str,
        history: list[dict[str, Any]] | None = None,
        filters: Filters | None = None,
        mode: AnswerMode | str | None = None,
        top_k: int | None = None,
        retrieval: RetrievalMode | str | None = None,
    ) -> AnswerStream:
        """Iterate for the answer's text as it is written (an LLM's own deltas; an
        extractive answer in one piece once checked); `.result` is the `Answer`.
        Nothing runs until it is iterated."""
        return Streamed(self._answer(question, history, filters, mode, top_k, retrieval))

    def _answer(self, question: str, history: list[dict[str, Any]] | None,
                filters: Filters | None, mode: AnswerMode | str | None, top_k: int | None,
                retrieval: RetrievalMode | str | None) -> Generator[str, None, Answer]:
        question = " ".join((question or "").split())
        if not question:
            raise ValueError("the question is empty")
        chain, notice = self.answerers(mode)
        notices = [notice] if notice else []
        timings: dict[str, float] = {}
        started = time.perf_counter()

        try:
            standalone = condense(question, history, chain[0])
        except LLMError as exc:
            notices.append(f"{exc}; answered without the LLM")
            chain = chain[1:]
            standalone = rewrite(question, history)
        timings["condense"] = _ms(started)

        with _timed(timings, "retrieve"):
            passages = self.retriever(retrieval).retrieve(
                standalone, top_k=top_k or self.settings.top_k, filters=filters)
        # A story picked from a question back: its passages, asked the bare question.
        asked, story = story_of(standalone)
        if story is not None:
            passages = of_story(passages, story)

        choices = clarify(asked, passages) if story is None else []
        if choices:  # a question back: the question names no subject, the passages many
            answer = ask_back(question, standalone, choices, passages, chain[0].mode)
            yield answer.answer
            timings["total"] = _ms(started)
            return answer.model_copy(update={"timings_ms": timings})

        scorer = SupportScorer(self.store.embed_model if passages else None)
        written: list[str] = []
        model: str | None = None
        for answerer in chain:
            with _timed(timings, "answer"):
                if not passages:
                    draft = self._nothing_found()
                else:
                    try:
                        draft = yield from _recording(answerer.draft(asked, passages),
                                                      written)
                    except LLMError as exc:
                        notices.append(f"{exc}; showing the extractive answer instead")
                        continue
                model = answerer.model or model  # the model that wrote text
            with _timed(timings, "verify"):
                checked = check(draft, passages, scorer)
            if answerer is not chain[-1] and not stands(draft, checked, answerer):
                notices.append(UNSUPPORTED)
                continue
            break
        with _timed(timings, "verify"):
            answer = assemble(question, standalone, draft, checked, passages, answerer.mode,
                              model, [*notices, draft.notice])
        if not answerer.streams_text:
            # After a rejected or broken-off model answer, the replacement goes out too.
            yield ("\n\n" if written else "") + answer.answer
        timings["total"] = _ms(started)
        return answer.model_copy(update={"timings_ms": timings})

    def _nothing_found(self) -> Draft:
        """No passage matched: refused, saying so when the library is empty."""
        return Draft(refused=True,
                     notice="" if self.store.has_chunks() else self.store.empty_message())


# -- the steps ----------------------------------------------------------------


def condense(question: str, history: list[dict[str, Any]] | None, answerer: Answerer) -> str:
    """The question as retrieval should see it: a follow-up carries the earlier turn's
    subject (rule-based), or the answerer's rewrite when it has a plausible one.
    Raises LLMError when a model's rewrite fails."""
    standalone = rewrite(question, history)
    if not history:
        return standalone
    condensed = answerer.condense(question, history)
    # A weak model may answer instead of rewriting ("The answer to this question is:");
    # retrieving with that would fetch unrelated passages.
    if condensed and _plausible_rewrite(condensed, question, history):
        return condensed
    return standalone


def check(draft: Draft, passages: list[Passage], scorer: SupportScorer) -> list[Checked]:
    """Verify each claim of a draft against the passages it cites."""
    return [] if draft.refused else verify(draft.claims, passages, scorer)


def stands(draft: Draft, checked: list[Checked], answerer: Answerer) -> bool:
    """Whether a draft is shown: one that must be supported needs a supported sentence
    (a refusal stands: the articles may indeed not say)."""
    return (draft.refused or not answerer.must_be_supported
            or any(c.supported for c in checked))


def assemble(question: str, standalone: str, draft: Draft, checked: list[Checked],
             passages: list[Passage], mode: AnswerMode, model: str | None,
             notices: list[str]) -> Answer:
    """The answer: citations numbered once, in order of first use."""
    sentences, citations = number_citations(checked, passages)
    return Answer(
        question=question, standalone_question=standalone,
        answer=REFUSAL if draft.refused else answer_text(sentences), refused=draft.refused,
        mode=mode, model=model, citations=citations, sentences=sentences,
        retrieved=[_retrieved(p) for p in passages],
        notice="; ".join(x for x in notices if x),
    )


def ask_back(question: str, standalone: str, choices: list[Choice], passages: list[Passage],
             mode: AnswerMode) -> Answer:
    """The answer that is a question: which of these stories is meant?"""
    listed = " · ".join(f"{c.title} ({c.published})" if c.published else c.title
                        for c in choices)
    return Answer(question=question, standalone_question=standalone, mode=mode,
                  answer=f"Which story do you mean? The articles cover: {listed}",
                  clarify=choices, retrieved=[_retrieved(p) for p in passages])


def _plausible_rewrite(condensed: str, question: str, history: list[dict[str, Any]]) -> bool:
    """A question that keeps a subject of the conversation's questions."""
    asked = " ".join([question, *user_turns(history)])
    return "?" in condensed and bool(set(content_terms(condensed)) & set(content_terms(asked)))


def _recording(gen: Generator[str, None, Draft], sink: list[str]
               ) -> Generator[str, None, Draft]:
    """Relays a draft's text, noting what went out; closing this closes the draft."""
    try:
        while True:
            try:
                item = next(gen)
            except StopIteration as stop:
                return stop.value
            sink.append(item)
            yield item
    finally:
        gen.close()


def _retrieved(p: Passage) -> Retrieved:
    return Retrieved(chunk_id=p.chunk_id, article_id=p.article_id, path=p.path, url=p.url,
                     title=p.title, score=round(p.score, 4), start=p.start, end=p.end)


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = round(timings.get(step, 0.0) + _ms(t0), 1)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


__all__ = ["REFUSAL", "Answer", "AnswerStream", "Engine", "Filters"]

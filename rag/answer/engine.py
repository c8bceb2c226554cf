"""Question in, checked answer out: the one code path the CLI, the app and eval share.

    engine = Engine.from_settings(settings)
    answer = engine.ask(Ask("why did relations sour?", history=[...], filters=Filters(...)))
    stream = engine.stream(Ask(...))       # an AnswerStream
    for delta in stream: ...               # text as it is written
    stream.result                          # the Answer

The engine is given its parts and builds none (`Engine.from_settings` builds the
defaults): the store, its retrieval (a retriever per mode,
`rag.answer.retrieve.RetrieverFactory`), the answerers (`rag.answer.draft.chain.Answerers`)
and the reader that chooses a verbatim answer's sentences (`ReaderChoice`).

The steps, each a function or object of its own: condense (a follow-up to a
standalone question) -> retrieve (`Retriever`) -> clarify (a question that names no
subject, over passages of several stories that could each answer, gets a question
back; of one such story, an answer from it; of none, a refusal: `rag.answer.clarify.decide`)
-> draft (the first answerer in the chain whose draft stands) -> verify
(`rag.answer.verify.verify`) -> assemble (citation numbers assigned once, the `Answer`:
`rag.answer.assemble`). Every answer leaves through one place (`Engine._finish`).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, timedelta

from rag.answer import timeline
from rag.answer.assemble import Composed, applied_filter, ask_back, assemble, by_recency, dated
from rag.answer.clarify import decide, named_story, of_story
from rag.answer.condense import condense, rewrite
from rag.answer.draft.chain import Answerer, Answerers, ExtractiveAnswerer, stands
from rag.answer.draft.llm import LLMAnswerer, LLMError, llm_configured
from rag.answer.readers.base import Reader, ReaderChoice
from rag.answer.request import Ask
from rag.answer.retrieve import Filters, PassageRetriever, RetrieverFactory, Retrievers
from rag.answer.settle import Settled, settle
from rag.answer.streaming import checking, recording, rest_of
from rag.answer.verify import SupportScorer, verify_draft
from rag.dates import plan as temporal
from rag.dates.parse import DateFilter
from rag.dates.plan import TimePlan
from rag.errors import RagError, UsageError
from rag.settings import Settings
from rag.store.articles import ArticleStore
from rag.store.keyword import KeywordIndex
from rag.streams import Streamed
from rag.types import REFUSAL, Answer, AnswerMode, Checked, Draft, Passage, RetrievalMode

AnswerStream = Streamed[str, Answer]
# What an answer says when it asked for a model and none could be had; the why and what
# to do go to the operator (`Engine.setup_notes`, the log), not to whoever asked.
NO_MODEL = "answered without a language model (none is available on this server)"
UNSUPPORTED = ("the model's answer was not supported by the articles; showing the extractive "
               "answer instead")
PASSED_ON = ("the local model found no answer in the articles; showing the extractive answer "
             "instead")


class EmptyLibrary(RagError):
    """A question asked of a library with no articles: the message says how to add some.
    The one place this is decided; each surface shows it in its own words (the CLI as
    an error, the page and the APIs as an answer saying how to add articles)."""


class Engine:
    def __init__(self, settings: Settings, *, store: ArticleStore,
                 retriever: RetrieverFactory, answerers: Answerers,
                 reader: ReaderChoice) -> None:
        """`retriever`: a retriever per mode over `store`; `reader`: the reader
        `answerers.extractive` chooses sentences with, and why it is not the preferred
        one (for the answers' `reader_note` and the setup notes)."""
        if answerers.extractive.reader is not reader.reader:
            raise ValueError("the reader must be the one the extractive answerer reads with")
        self.settings, self.store = settings, store
        self.answerers, self.reader = answerers, reader
        self._retrievers = retriever
        self._newest_seen: tuple[str | None, date | None] = (None, None)

    @classmethod
    def from_settings(cls, settings: Settings, *, store: ArticleStore | None = None,
                      retriever: RetrieverFactory | None = None,
                      llm_answerer: Answerer | None = None,
                      reader: Reader | None = None) -> Engine:
        """The engine with the default parts, any of these given instead: the store the
        settings name; hybrid, dense and BM25 retrieval over it (`Retrievers`); the
        endpoint's LLM answerer when one is configured; the local model's answerer,
        loaded when a generated answer is first asked for; the extractive answerer over
        the store's keyword index, its reader the one the settings ask for
        (`reader_for`; an injected reader is taken as it is)."""
        store = store or ArticleStore(settings)
        keyword = KeywordIndex.of(store)
        if reader is None:
            from rag.answer.readers.llm import reader_for

            choice = reader_for(settings)
        else:
            choice = ReaderChoice(reader)
        if llm_answerer is None and llm_configured(settings):
            llm_answerer = LLMAnswerer(settings)

        def local() -> tuple[Answerer | None, str]:
            from rag.answer.draft.local import local_answerer

            return local_answerer(settings)

        answerers = Answerers(ExtractiveAnswerer(store, keyword, choice.reader),
                              llm_answerer, local)
        return cls(settings, store=store, retriever=retriever or Retrievers(store, keyword),
                   answerers=answerers, reader=choice)

    # -- parts -------------------------------------------------------------

    @property
    def extractive(self) -> ExtractiveAnswerer:
        return self.answerers.extractive

    @property
    def keyword(self) -> KeywordIndex:
        """The keyword index the extractive answerer weighs words by (the default
        retrieval searches the same)."""
        return self.answerers.extractive.keyword

    def retriever(self, mode: RetrievalMode | str | None = None) -> PassageRetriever:
        return self._retrievers(RetrievalMode(mode or self.settings.retrieval_mode))

    def llm(self) -> Answerer | None:
        """The endpoint's model answerer, if one is configured (or was given)."""
        return self.answerers.llm

    def resolve_mode(self, mode: AnswerMode | str | None) -> AnswerMode:
        try:
            mode = AnswerMode(mode or self.settings.answer_mode)
        except ValueError:
            raise UsageError("answer mode must be one of "
                             + ", ".join(m.value for m in AnswerMode)) from None
        if mode == AnswerMode.AUTO:
            return AnswerMode.LLM if self.answerers.llm is not None else AnswerMode.EXTRACTIVE
        return mode

    def chain(self, mode: AnswerMode | str | None = None) -> tuple[list[Answerer], str]:
        """The fallback chain for a mode (the model that writes, then the extractive
        answerer), and a notice when the mode asked for a model and none can be had."""
        if self.resolve_mode(mode) != AnswerMode.LLM:
            return [self.extractive], ""
        writer = self.answerers.writer()  # no endpoint: the local model, if it can be had
        if writer is None:
            return [self.extractive], NO_MODEL
        return [writer, self.extractive], ""

    def setup_notes(self) -> list[str]:
        """For the operator (the console at start-up, the editors' view): which reader
        chooses the verbatim answers' sentences and what writes generated ones, and when
        either is not the best this server could have, why and what to do."""
        why = self.reader.why
        notes = [f"Sentences of verbatim answers are chosen by the {self.reader.reader.name} "
                 "reader" + (f" ({why})." if why else ".")]
        llm, local = self.answerers.llm, self.answerers.local
        if llm is not None:
            notes.append(f"Generated answers are written by {llm.model}.")
        elif local is None:
            notes.append("Generated answers (answer mode llm) are written by the local model, "
                         "loaded when first asked; set RAG_LLM_MODEL and OPENAI_BASE_URL for "
                         "an endpoint.")
        elif local[0] is None:
            notes.append(f"Generated answers are unavailable: {local[1]}.")
        else:
            notes.append(f"Generated answers are written by {local[0].model}.")
        return notes

    def warm(self) -> None:
        """Ready for the first question: the keyword index (when the library has
        chunks) and the reader (a model reader's fixed prompt)."""
        if self.store.has_chunks():
            self.keyword.ensure()
        self.reader.reader.warm()

    # -- asking ------------------------------------------------------------

    def ask(self, request: Ask) -> Answer:
        return self.stream(request).result

    def stream(self, request: Ask) -> AnswerStream:
        """Iterate for the answer's text as it is written (an LLM's own deltas; an
        extractive answer in one piece once checked); `.result` is the `Answer`.
        Nothing runs until it is iterated.

        `request.checked`: the text goes out only as the answer will stand, sentence by
        sentence once each is verified, with the answer's own citation numbers. What
        was sent then needs no replacing, which a client that only appends (an
        OpenAI-style stream) cannot do. Between sentences it yields "" so a consumer can
        stop the model between its deltas.
        """
        return Streamed(self._answer(request))

    def _answer(self, request: Ask) -> Generator[str, None, Answer]:
        question = " ".join((request.question or "").split())
        if not question:
            raise UsageError("the question is empty")
        chain, notice = self.chain(request.mode)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        composed = yield from self._compose(replace(request, question=question), chain,
                                            [notice] if notice else [], timings)
        timings["total"] = _ms(started)
        return self._finish(composed, timings)

    def _finish(self, composed: Composed, timings: dict[str, float]) -> Answer:
        """The answer as it leaves the engine: dated (`rag.answer.assemble.dated`),
        timed, and a verbatim answer naming the reader that chose its sentences (or
        refused it) and why not the other: in the JSON, never as a notice to the reader
        of the answer. A question back and a timeline are chosen by no reader."""
        answer = dated(*composed).model_copy(update={"timings_ms": timings})
        if answer.mode != AnswerMode.EXTRACTIVE or answer.clarify or answer.timeline:
            return answer
        return answer.model_copy(update={"reader": self.reader.reader.name,
                                         "reader_note": self.reader.note})

    def _compose(self, request: Ask, chain: list[Answerer], notices: list[str],
                 timings: dict[str, float]) -> Generator[str, None, Composed]:
        """The answer's text as it goes out; returns the answer (a timeline, a question
        back, a refusal, or the first draft that stands) with what dates it."""
        question, history = request.question, request.history
        with _timed(timings, "condense"):
            try:
                standalone = condense(question, history, chain[0])
            except LLMError as exc:
                notices.append(f"{exc}; answered without the LLM")
                chain = chain[1:]
                standalone = rewrite(question, history)

        with _timed(timings, "retrieve"):
            when = self.plan(question, standalone, request.as_of)
            settled = self._retrieve(standalone, when, request.filters,
                                     request.top_k or self.settings.top_k,
                                     request.retrieval, request.dates_narrow)
            passages = settled.passages
        if not passages and not self.store.has_chunks():
            raise EmptyLibrary(self.store.empty_message())
        applied = applied_filter(when) if when.window is not None and request.dates_narrow \
            else None
        window = when.window if applied is not None else None
        if applied is not None and not passages:
            notices.append(f"no passage speaks of {applied.text} (from “{applied.phrase}”, "
                           f"read {applied.anchor_note}); ask without the date filter to "
                           "search all dates")
        # A story picked from a question back: its passages, asked the bare question.
        asked, story = named_story(standalone)
        if story is not None:
            passages = of_story(passages, story)

        if when.intent == "timeline" and story is None and passages:
            before = self._before(request, when, window)
            answer = timeline.answer(question, standalone, passages, notices, window, before,
                                     self.store.embed_model)
            yield answer.answer
            return Composed(answer, passages + before, settled, applied)

        if story is None:
            with _timed(timings, "clarify"):
                decision = decide(asked, passages, lambda story_passages: (
                    self.extractive.could_answer(asked, story_passages, window)))
            if decision.choices:  # a question back: no subject, several stories answer
                answer = ask_back(question, standalone, decision.choices, passages,
                                  chain[0].mode)
                yield answer.answer
                return Composed(answer, passages, settled, None)  # it shows no date window
            if decision.refused:  # no story's passages could answer
                answer = assemble(question, standalone, Draft(refused=True), [], passages,
                                  chain[-1].mode, None, notices)
                yield answer.answer
                return Composed(answer, passages, settled, applied)
            passages = decision.passages

        written: list[str] = []
        if when.intent == "latest":
            asked = temporal.without_latest(asked)
        draft, verified, answerer, model = yield from self._draft(
            chain, asked, window, passages, notices, timings, written, request.checked)
        if draft.refused and settled.backup and story is None:
            # "The latest": its newest article did not answer; the others, newest first.
            passages = settled.backup
            draft, verified, answerer, model = yield from self._draft(
                chain, asked, window, passages, notices, timings, written, request.checked)
        with _timed(timings, "verify"):
            answer = assemble(question, standalone, draft, verified, passages, answerer.mode,
                              model, [*notices, draft.notice])
        if request.checked:
            yield rest_of(answer.answer, "".join(written))
        elif not answerer.streams_text:
            # After a rejected or broken-off model answer, the replacement goes out too.
            yield ("\n\n" if written else "") + answer.answer
        return Composed(answer, passages, settled, applied)

    def _newest(self) -> date | None:
        """The library's newest publication date, read once per store generation."""
        generation = self.store.generation()
        if self._newest_seen[0] != generation:
            self._newest_seen = (generation, self.store.newest_published())
        return self._newest_seen[1]

    def plan(self, question: str, standalone: str, as_of: date | None = None) -> TimePlan:
        """What the user's own words ask of time (not dates a follow-up's rewrite carried
        over from earlier turns); retrieval reads the standalone question without the
        date phrase. The library's newest date is only read when the question has a date
        or asks for the latest."""
        rough = temporal.plan(question, as_of)
        if as_of is None and (rough.window is not None or rough.intent == "latest"):
            rough = temporal.plan(question, as_of, self._newest())
        query = standalone
        if rough.window is not None and rough.window.phrase in standalone:
            query = standalone.replace(rough.window.phrase, " ", 1)
            query = " ".join(query.replace(" ?", "?").split())
        return replace(rough, query=query if standalone != question else rough.query)

    def _retrieve(self, query: str, when: TimePlan, filters: Filters | None, top_k: int,
                  retrieval: RetrievalMode | str | None, dates_narrow: bool) -> Settled:
        """Passages for the question: in its date window (`dates_narrow`), copies of one
        story settled, and for "latest" the newest of the relevant first."""
        if when.window is not None and dates_narrow:
            filters = replace(filters or Filters(), when_from=when.window.first,
                              when_to=when.window.last)
            query = when.query
        if when.as_of is not None:  # what was not yet published does not exist
            filters = replace(filters or Filters(), as_of=when.as_of)
        wide = top_k * 3 if when.intent else top_k
        passages = self.retriever(retrieval).retrieve(query, top_k=wide, filters=filters)

        def fetch(article_id: str) -> list[Passage]:
            only = replace(filters or Filters(), article_ids=[article_id])
            return self.retriever(RetrievalMode.DENSE).retrieve(query, top_k=2, filters=only)

        settled = settle(passages, self.store, when.wants_older, fetch, when.as_of)
        if when.intent == "latest":
            # Answer from the newest relevant article (its passages only, or the picker
            # may prefer an older one's sentence that matches the words better).
            ranked = by_recency(settled.passages)
            newest = [p for p in ranked if ranked and p.article_id == ranked[0].article_id]
            settled.passages, settled.backup = newest[:top_k], ranked[:top_k]
        elif when.intent != "timeline":
            settled.passages = settled.passages[:top_k]
        return settled

    def _before(self, request: Ask, when: TimePlan, window: DateFilter | None
                ) -> list[Passage]:
        """For "what changed since March?": passages from before the window, how things
        stood then (none for any other question)."""
        if window is None or window.first is None or not temporal.asks_change(
                request.question):
            return []
        until = replace(request.filters or Filters(), when_to=window.first - timedelta(days=1),
                        as_of=when.as_of)
        return self.retriever(request.retrieval).retrieve(
            when.query, top_k=request.top_k or self.settings.top_k, filters=until)

    def _draft(self, chain: list[Answerer], asked: str, window: DateFilter | None,
               passages: list[Passage], notices: list[str], timings: dict[str, float],
               written: list[str], checked: bool = False
               ) -> Generator[str, None, tuple[Draft, list[Checked], Answerer, str | None]]:
        """The first draft in the chain that stands, checked against the passages.
        `window`: the date filter the question's dates became, if it was applied; an
        answerer that matches the question's words is given it (`Answerer.takes_window`)."""
        scorer = SupportScorer(self.store.embed_model if passages else None)
        model: str | None = None
        for answerer in chain:
            with _timed(timings, "answer"):
                if not passages:  # nothing matched: refused
                    draft = Draft(refused=True)
                else:
                    try:
                        drafting = answerer.draft(
                            asked, passages, window=window if answerer.takes_window else None)
                        relay = (checking(drafting, passages, scorer, written)
                                 if checked and answerer.streams_text
                                 else recording(drafting, written))
                        draft = yield from relay
                    except LLMError as exc:
                        notices.append(f"{exc}; showing the extractive answer instead")
                        continue
                model = answerer.model or model  # the model that wrote text
            with _timed(timings, "verify"):
                verified = verify_draft(draft, passages, scorer)
            if answerer is not chain[-1] and not stands(draft, verified, answerer):
                notices.append(PASSED_ON if draft.refused else UNSUPPORTED)
                continue
            break
        return draft, verified, answerer, model

@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = round(timings.get(step, 0.0) + _ms(t0), 1)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


__all__ = ["REFUSAL", "Answer", "AnswerStream", "Ask", "EmptyLibrary", "Engine", "Filters"]

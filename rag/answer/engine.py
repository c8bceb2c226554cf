"""Question in, checked answer out: the one code path the CLI, the app and eval share.

    engine = Engine(settings)
    answer = engine.ask("why did relations sour?", history=[...], filters=Filters(...))
    stream = engine.stream(...)            # an AnswerStream
    for delta in stream: ...               # text as it is written
    stream.result                          # the Answer

The steps, each a function or object of its own: condense (a follow-up to a
standalone question) -> retrieve (`Retriever`) -> clarify (a question that names no
subject, over passages of several stories that could each answer, gets a question
back; of one such story, an answer from it; of none, a refusal: `rag.answer.clarify.decide`)
-> draft (the first answerer in the chain whose draft stands) -> verify
(`rag.answer.verify.verify`) -> assemble (citation numbers assigned once, the `Answer`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from rag.answer import timeline
from rag.answer.clarify import decide, named_story, of_story
from rag.answer.condense import rewrite, user_turns
from rag.answer.draft.chain import Answerer, ExtractiveAnswerer
from rag.answer.draft.llm import LLMAnswerer, LLMError, llm_configured
from rag.answer.readers.base import Reader
from rag.answer.retrieve import Filters, Retriever
from rag.answer.settle import Settled, settle
from rag.answer.verify import SupportScorer, number_citations, split_cited_sentences, verify
from rag.dates import plan as temporal
from rag.dates.parse import DateFilter, format_day, format_range, resolve_dates
from rag.dates.plan import TimePlan
from rag.settings import Settings
from rag.store.articles import ArticleStore
from rag.store.keyword import KeywordIndex
from rag.streams import Streamed
from rag.text import content_terms
from rag.types import (
    REFUSAL,
    Answer,
    AnswerMode,
    AppliedFilter,
    Checked,
    Choice,
    Claim,
    Draft,
    Passage,
    RetrievalMode,
    Retrieved,
    TimelineEvent,
    answer_text,
)

logger = logging.getLogger(__name__)
AnswerStream = Streamed[str, Answer]
# What an answer says when it asked for a model and none could be had; the why and what
# to do go to the operator (`Engine.setup_notes`, the log), not to whoever asked.
NO_MODEL = "answered without a language model (none is available on this server)"
UNSUPPORTED = ("the model's answer was not supported by the articles; showing the extractive "
               "answer instead")
PASSED_ON = ("the local model found no answer in the articles; showing the extractive answer "
             "instead")


class Engine:
    def __init__(self, settings: Settings, store: ArticleStore | None = None,
                 llm_answerer: LLMAnswerer | None = None, reader: Reader | None = None) -> None:
        """Parts may be injected (a ready LLM answerer; the `Reader` that chooses the
        extractive answer's sentences, by default the heuristic one)."""
        self.settings = settings
        self.store = store or ArticleStore(settings)
        self.keyword = KeywordIndex.of(self.store)
        self._retrievers: dict[RetrievalMode, Retriever] = {}
        self._llm = llm_answerer
        self._local: tuple[Answerer | None, str] | None = None  # the local model's answerer
        self._reader_note = ""  # why the preferred reader is not the one answering
        self._reader_why = ""  # the same, for the operator
        if reader is None:
            from rag.answer.readers.llm import reader_for

            reader, self._reader_note, self._reader_why = reader_for(settings)
        self.extractive = ExtractiveAnswerer(self.store, self.keyword, reader)
        self._newest_seen: tuple[str | None, date | None] = (None, None)

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
            if llm is None:  # no endpoint: the local model writes, if it can be had
                if self._local is None:
                    from rag.answer.draft.local import local_answerer

                    self._local = local_answerer(self.settings)
                local, _ = self._local
                if local is None:
                    return [self.extractive], NO_MODEL
                return [local, self.extractive], ""
            return [llm, self.extractive], ""
        return [self.extractive], ""

    def setup_notes(self) -> list[str]:
        """For the operator (the console at start-up, the editors' view): which reader
        chooses the verbatim answers' sentences and what writes generated ones, and when
        either is not the best this server could have, why and what to do."""
        reader = self.extractive.reader.name
        notes = [f"Sentences of verbatim answers are chosen by the {reader} reader"
                 + (f" ({self._reader_why})." if self._reader_why else ".")]
        llm = self.llm()
        if llm is not None:
            notes.append(f"Generated answers are written by {llm.model}.")
        elif self._local is None:
            notes.append("Generated answers (answer mode llm) are written by the local model, "
                         "loaded when first asked; set RAG_LLM_MODEL and OPENAI_BASE_URL for "
                         "an endpoint.")
        elif self._local[0] is None:
            notes.append(f"Generated answers are unavailable: {self._local[1]}.")
        else:
            notes.append(f"Generated answers are written by {self._local[0].model}.")
        return notes

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
        as_of: date | None = None,
        date_filter: bool = True,
        checked: bool = False,
    ) -> AnswerStream:
        """Iterate for the answer's text as it is written (an LLM's own deltas; an
        extractive answer in one piece once checked); `.result` is the `Answer`.
        Nothing runs until it is iterated. `as_of`: answer as if today were that day;
        `date_filter`: let dates in the question narrow the search (shown in the answer).

        `checked`: the text goes out only as the answer will stand, sentence by sentence
        once each is verified, with the answer's own citation numbers. What was sent
        then needs no replacing, which a client that only appends (an OpenAI-style
        stream) cannot do. Between sentences it yields "" so a consumer can stop the
        model between its deltas.
        """
        return Streamed(self._named(self._answer(question, history, filters, mode, top_k,
                                                 retrieval, as_of, date_filter, checked)))

    def _named(self, answering: Generator[str, None, Answer]) -> Generator[str, None, Answer]:
        """The answer, saying which reader chose a verbatim answer's sentences (or refused
        it), and why not the other: in the JSON, never as a notice to the reader of the
        answer. A question back and a timeline are chosen by no reader."""
        answer = yield from answering
        if answer.mode != AnswerMode.EXTRACTIVE or answer.clarify or answer.timeline:
            return answer
        return answer.model_copy(update={"reader": self.extractive.reader.name,
                                         "reader_note": self._reader_note})

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
                  retrieval: RetrievalMode | str | None, use_dates: bool) -> Settled:
        """Passages for the question: in its date window, copies of one story settled,
        and for "latest" the newest of the relevant first."""
        if when.window is not None and use_dates:
            filters = replace(filters or Filters(), when_from=when.window.first,
                              when_to=when.window.last)
            query = when.query
        if when.as_of is not None:  # what was not yet published does not exist
            filters = replace(filters or Filters(), as_of=when.as_of)
        wide = top_k * 3 if when.intent else top_k
        retriever = self.retriever(retrieval)
        passages = retriever.retrieve(query, top_k=wide, filters=filters)

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

    def _answer(self, question: str, history: list[dict[str, Any]] | None,
                filters: Filters | None, mode: AnswerMode | str | None, top_k: int | None,
                retrieval: RetrievalMode | str | None, as_of: date | None = None,
                use_dates: bool = True, checked: bool = False
                ) -> Generator[str, None, Answer]:
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
            when = self.plan(question, standalone, as_of)
            settled = self._retrieve(standalone, when, filters, top_k or self.settings.top_k,
                                     retrieval, use_dates)
            passages = settled.passages
        applied = applied_filter(when) if when.window is not None and use_dates else None
        if applied is not None and not passages:
            notices.append(f"no passage speaks of {applied.text} (from “{applied.phrase}”, "
                           f"read {applied.anchor_note}); ask without the date filter to "
                           "search all dates")
        # A story picked from a question back: its passages, asked the bare question.
        asked, story = named_story(standalone)
        if story is not None:
            passages = of_story(passages, story)

        if when.intent == "timeline" and story is None and passages:
            window = when.window if applied is not None else None
            before: list[Passage] = []
            if window is not None and window.first is not None and temporal.asks_change(
                    question):  # "what changed since March?": how things stood before too
                until = replace(filters or Filters(), when_to=window.first - timedelta(days=1),
                                as_of=when.as_of)
                before = self.retriever(retrieval).retrieve(
                    when.query, top_k=top_k or self.settings.top_k, filters=until)
            answer = self._timeline(question, standalone, passages, notices, window, before)
            passages = passages + before
            yield answer.answer
            timings["total"] = _ms(started)
            return _dated(answer, passages, settled, applied).model_copy(
                update={"timings_ms": timings})

        window = when.window if applied is not None else None
        if story is None:
            with _timed(timings, "clarify"):
                decision = decide(asked, passages, lambda story_passages: (
                    self.extractive.could_answer(asked, story_passages, window)))
            if decision.choices:  # a question back: no subject, several stories answer
                answer = ask_back(question, standalone, decision.choices, passages,
                                  chain[0].mode)
                yield answer.answer
                timings["total"] = _ms(started)
                return answer.model_copy(update={"timings_ms": timings})
            if decision.refused:  # no story's passages could answer
                answer = assemble(question, standalone, Draft(refused=True), [], passages,
                                  chain[-1].mode, None, notices)
                yield answer.answer
                timings["total"] = _ms(started)
                return _dated(answer, passages, settled, applied).model_copy(
                    update={"timings_ms": timings})
            passages = decision.passages

        written: list[str] = []
        if when.intent == "latest":
            asked = temporal.without_latest(asked)
        draft, verified, answerer, model = yield from self._draft(
            chain, asked, window, passages, notices, timings, written, checked)
        if draft.refused and settled.backup and story is None:
            # "The latest": its newest article did not answer; the others, newest first.
            passages = settled.backup
            draft, verified, answerer, model = yield from self._draft(
                chain, asked, window, passages, notices, timings, written, checked)
        with _timed(timings, "verify"):
            answer = assemble(question, standalone, draft, verified, passages, answerer.mode,
                              model, [*notices, draft.notice])
        if checked:
            yield rest_of(answer.answer, "".join(written))
        elif not answerer.streams_text:
            # After a rejected or broken-off model answer, the replacement goes out too.
            yield ("\n\n" if written else "") + answer.answer
        timings["total"] = _ms(started)
        return _dated(answer, passages, settled, applied).model_copy(
            update={"timings_ms": timings})

    def _draft(self, chain: list[Answerer], asked: str, window: DateFilter | None,
               passages: list[Passage], notices: list[str], timings: dict[str, float],
               written: list[str], checked: bool = False
               ) -> Generator[str, None, tuple[Draft, list[Checked], Answerer, str | None]]:
        """The first draft in the chain that stands, checked against the passages.
        `window`: the date filter the question's dates became, if it was applied; an
        answerer that matches the question's words needs it (`Answerer.takes_window`)."""
        scorer = SupportScorer(self.store.embed_model if passages else None)
        model: str | None = None
        for answerer in chain:
            with _timed(timings, "answer"):
                if not passages:
                    draft = self._nothing_found()
                else:
                    try:
                        drafting = (answerer.draft(asked, passages, window=window)
                                    if getattr(answerer, "takes_window", False)
                                    else answerer.draft(asked, passages))
                        relay = (_checking(drafting, passages, scorer, written)
                                 if checked and answerer.streams_text
                                 else _recording(drafting, written))
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

    def _timeline(self, question: str, standalone: str, passages: list[Passage],
                  notices: list[str], window: DateFilter | None,
                  before: list[Passage] | None = None) -> Answer:
        """Dated, quoted sentences oldest first: the same for every answer mode (the
        sentences are the articles' own words). `before`: passages from before the
        window, whose latest event shows how things stood ("what changed since…")."""
        embed = self.store.embed_model
        drafted, days = timeline.draft(standalone, passages, embed,
                                       window.first if window else None,
                                       window.last if window else None)
        earlier = 0
        if before and window is not None and window.first is not None and not drafted.refused:
            then, then_days = timeline.draft(standalone, before, embed,
                                             None, window.first - timedelta(days=1))
            if not then.refused:
                last = then.claims[-1]  # the latest event before the window
                shifted = Claim(text=last.text, passages=[n + len(passages)
                                                          for n in last.passages])
                drafted = drafted.model_copy(update={"claims": [shifted, *drafted.claims]})
                days, earlier = [then_days[-1], *days], 1
        everything = passages + (before or [])
        checked = verify_draft(drafted, everything, SupportScorer(embed))
        answer = assemble(question, standalone, drafted, checked, everything,
                          AnswerMode.EXTRACTIVE, None, [*notices, drafted.notice])
        if drafted.refused:
            return answer
        events = [TimelineEvent(date=day.isoformat(), date_text=format_day(day),
                                sentence=s.text, citation=s.citations[0] if s.citations else 0,
                                before=k < earlier)
                  for k, (day, s) in enumerate(zip(days, answer.sentences, strict=True))]
        text = "\n".join(f"- {e.date_text}{' (before)' if e.before else ''}: {s.text} "
                         + "".join(f"[{n}]" for n in s.citations)
                         for e, s in zip(events, answer.sentences, strict=True))
        return answer.model_copy(update={"timeline": events, "answer": text})

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


def verify_draft(draft: Draft, passages: list[Passage], scorer: SupportScorer) -> list[Checked]:
    """Verify each claim of a draft against the passages it cites."""
    return [] if draft.refused else verify(draft.claims, passages, scorer)


def stands(draft: Draft, checked: list[Checked], answerer: Answerer) -> bool:
    """Whether a draft is shown: one that must be supported needs a supported sentence;
    a refusal stands where the answerer's refusals are believed (the articles may
    indeed not say), and is passed on down the chain where they are not."""
    if draft.refused:
        return answerer.refusal_stands
    return not answerer.must_be_supported or any(c.supported for c in checked)


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


SETTLED_CHARS = 12  # a sentence begun this far has ended the one before it for good


def _checking(gen: Generator[str, None, Draft], passages: list[Passage],
              scorer: SupportScorer, sink: list[str]) -> Generator[str, None, Draft]:
    """Relays a model's draft as the answer will stand: each sentence once the next
    one has begun, verified and numbered as `assemble` will number it (verify is per
    sentence and numbering is by first use, so a prefix of the answer is numbered as
    the whole will be). Nothing goes out until a sentence is supported, because a draft
    without one is discarded (`stands`); "" between, so the consumer may stop."""
    text, done, shown = "", [], ""
    try:
        while True:
            try:
                text += next(gen)
            except StopIteration as stop:
                return stop.value
            claims = split_cited_sentences(text)
            settled = claims[:-1] if claims and len(claims[-1].text) >= SETTLED_CHARS \
                else claims[:-2]
            done.extend(c for claim in settled[len(done):]
                        for c in verify([claim], passages, scorer))
            out = ""
            if any(c.supported for c in done):
                rendered = answer_text(number_citations(done, passages)[0])
                if rendered.startswith(shown):
                    out, shown = rendered[len(shown):], rendered
            if out:
                sink.append(out)
            yield out
    finally:
        gen.close()


def rest_of(answer: str, sent: str) -> str:
    """What is left to send of a checked answer after `sent`: the rest when what went
    out is its beginning; otherwise (a model that broke off after a checked sentence,
    its replacement next) the whole answer after a blank line."""
    if answer.startswith(sent):
        return answer[len(sent):]
    logger.info("the streamed sentences were not the answer's beginning; sending it whole")
    return "\n\n" + answer


def applied_filter(when: TimePlan) -> AppliedFilter:
    window = when.window
    assert window is not None
    return AppliedFilter(
        first=window.first.isoformat() if window.first else None,
        last=window.last.isoformat() if window.last else None,
        phrase=window.phrase, text=window.describe(), anchor=when.anchor.isoformat(),
        anchor_note=when.anchor_note)


def by_recency(passages: list[Passage], relevant: float = 0.8) -> list[Passage]:
    """For "the latest on X": among passages nearly as relevant as the best, the newest
    first; the rest after, by relevance."""
    if not passages:
        return passages
    best = max(p.score for p in passages)
    close = [p for p in passages if p.score >= relevant * best]
    rest = [p for p in passages if p.score < relevant * best]
    close.sort(key=lambda p: (p.published or "", p.score), reverse=True)
    return close + rest


def event_day(quote: str, published: str | None) -> tuple[str | None, str | None]:
    """The day a quoted sentence speaks of (ISO, shown), read against its publication."""
    day = date.fromisoformat(published) if published else None
    mentions = resolve_dates(quote, day)
    for m in mentions:
        if m.first == m.last:
            return m.first.isoformat(), format_day(m.first)
    if mentions:
        return None, format_range(mentions[0].first, mentions[0].last)
    return None, None


def _dated(answer: Answer, passages: list[Passage], settled: Settled,
           applied: AppliedFilter | None) -> Answer:
    """The answer with each citation's event day and story copies, and the date filter."""
    stories = {p.article_id: p.story for p in passages}
    citations = []
    for c in answer.citations:
        iso, shown = event_day(c.quote, c.published)
        citations.append(c.model_copy(update={
            "event_date": iso, "event_text": shown, "story": stories.get(c.article_id),
            "also_in": settled.others.get(c.article_id, [])}))
    return answer.model_copy(update={"citations": citations, "date_filter": applied})


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

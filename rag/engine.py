"""Question in, checked answer out: the one code path the CLI, the app and eval share.

    engine = Engine(settings)
    result = engine.ask("why did relations sour?", history=[...], filters=Filters(...))
    for event in engine.stream(...): ...   # str deltas, then the AnswerResult
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from rag.citations import AnswerSentence, Citation, SupportScorer, split_cited_sentences, verify
from rag.conversation import rewrite, user_turns
from rag.extractive import REFUSAL, Draft, ExtractiveAnswerer, bm25_idf, bm25_known
from rag.keyword import KeywordIndex
from rag.llm import LLMAnswerer, LLMError, llm_configured
from rag.retrieval import Filters, Passage, Retriever
from rag.settings import Settings
from rag.store import ArticleStore
from rag.text import content_terms

ANSWER_MODES = ("auto", "extractive", "llm")
_REFUSAL_TEXT = re.compile(r"\b(articles?|passages?|sources?)\s+(do(es)?n[o'’]t|do not|does not)"
                           r" (say|mention|answer|contain|provide)", re.I)


@dataclass
class AnswerResult:
    question: str
    standalone_question: str
    answer: str
    refused: bool
    mode: str  # "extractive" or "llm"
    model: str | None
    citations: list[Citation] = field(default_factory=list)
    sentences: list[AnswerSentence] = field(default_factory=list)
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    notice: str = ""  # e.g. why an LLM answer fell back to the extractive one

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Engine:
    def __init__(self, settings: Settings, store: ArticleStore | None = None,
                 llm_answerer: LLMAnswerer | None = None) -> None:
        self.settings = settings
        self.store = store or ArticleStore(settings)
        self.keyword = KeywordIndex(self.store)
        self._retrievers: dict[str, Retriever] = {}
        self._llm = llm_answerer

    # -- parts -------------------------------------------------------------

    def retriever(self, mode: str) -> Retriever:
        if mode not in self._retrievers:
            self._retrievers[mode] = Retriever(self.store, mode, self.keyword)
        return self._retrievers[mode]

    def llm(self) -> LLMAnswerer | None:
        if self._llm is None and llm_configured(self.settings):
            self._llm = LLMAnswerer(self.settings)
        return self._llm

    def resolve_mode(self, mode: str | None) -> str:
        mode = mode or self.settings.answer_mode
        if mode not in ANSWER_MODES:
            raise ValueError(f"answer mode must be one of {', '.join(ANSWER_MODES)}")
        if mode == "auto":
            return "llm" if llm_configured(self.settings) or self._llm else "extractive"
        return mode

    def extractive(self) -> ExtractiveAnswerer:
        bm25 = self.keyword.ensure()
        if bm25 is None:
            return ExtractiveAnswerer(self.store.embed_model)
        return ExtractiveAnswerer(self.store.embed_model, idf=bm25_idf(bm25.bm25),
                                  known=bm25_known(bm25.bm25))

    # -- asking ------------------------------------------------------------

    def ask(self, question: str, **kwargs: Any) -> AnswerResult:
        result = None
        for event in self.stream(question, **kwargs):
            if isinstance(event, AnswerResult):
                result = event
        assert result is not None
        return result

    def stream(
        self,
        question: str,
        history: list[dict[str, Any]] | None = None,
        filters: Filters | None = None,
        mode: str | None = None,
        top_k: int | None = None,
        retrieval: str | None = None,
    ) -> Iterator[str | AnswerResult]:
        """Yields answer text as it is written (LLM mode: token deltas), then the result."""
        question = " ".join((question or "").split())
        if not question:
            raise ValueError("the question is empty")
        mode = self.resolve_mode(mode)
        top_k = top_k or self.settings.top_k
        timings: dict[str, float] = {}
        started = time.perf_counter()
        notice = ""

        llm = self.llm() if mode == "llm" else None
        if mode == "llm" and llm is None:
            notice = "no LLM configured (set RAG_LLM_MODEL and OPENAI_BASE_URL/OPENAI_API_KEY)"
            mode = "extractive"
        standalone = rewrite(question, history)
        if llm is not None and history:
            try:
                condensed = llm.condense(question, history)
            except LLMError as exc:
                notice = f"{exc}; answered without the LLM"
                llm, mode = None, "extractive"
            else:
                # A weak model may answer instead of rewriting ("The answer to this question
                # is:"); retrieving with that would fetch unrelated passages.
                if _plausible_rewrite(condensed, question, history):
                    standalone = condensed
        timings["condense"] = _ms(started)

        t0 = time.perf_counter()
        passages = self.retriever(retrieval or self.settings.retrieval_mode).retrieve(
            standalone, top_k=top_k, filters=filters)
        timings["retrieve"] = _ms(t0)

        t0 = time.perf_counter()
        draft: Draft | None = None
        answer_text = ""
        parts: list[str] = []
        if not passages:
            draft = Draft(refused=True)
            if not self.store.exists or self.store.chunks.count() == 0:
                draft.notice = self.store.empty_message()
        elif llm is not None:
            try:
                for delta in llm.stream(standalone, passages):
                    parts.append(delta)
                    yield delta
                answer_text = "".join(parts)
            except LLMError as exc:
                notice = f"{exc}; showing the extractive answer instead"
                llm, mode = None, "extractive"
        if draft is None and llm is None:
            draft = self.extractive().answer(standalone, passages)
        timings["answer"] = _ms(t0)

        t0 = time.perf_counter()
        scorer = SupportScorer(self.store.embed_model if passages else None)
        if draft is None and llm is not None:
            draft = self._check_llm_answer(answer_text, passages, scorer)
            if draft is None:
                notice = ("the model's answer was not supported by the articles; showing the "
                          "extractive answer instead")
                mode = "extractive"
        streamed = mode == "llm"  # the model's text went out as it was written, and stands
        if draft is None:
            draft = self.extractive().answer(standalone, passages)
        if draft.citations is None:  # a model's answer was verified when it was checked
            draft.citations = verify(draft.sentences, passages, scorer) if not draft.refused else []
        citations = _renumber(draft.sentences, draft.citations)
        if not streamed:
            # After a rejected or broken-off model answer, the replacement goes out too.
            yield ("\n\n" if parts else "") + draft.text
        timings["verify"] = _ms(t0)
        timings["total"] = _ms(started)
        yield AnswerResult(
            question=question,
            standalone_question=standalone,
            answer=draft.text,
            refused=draft.refused,
            mode=mode,
            model=llm.model if llm is not None else None,  # the model that wrote text
            citations=citations,
            sentences=draft.sentences,
            retrieved=[_retrieved(p) for p in passages],
            timings_ms=timings,
            notice="; ".join(x for x in (notice, draft.notice) if x),
        )

    @staticmethod
    def _check_llm_answer(text: str, passages: list[Passage], scorer: SupportScorer
                          ) -> Draft | None:
        """The model's answer as a draft, or None when nothing in it is supported."""
        sentences = split_cited_sentences(text)
        if not sentences or (_REFUSAL_TEXT.search(text) and len(sentences) <= 2
                             and not any(s.citations for s in sentences)):
            return Draft(refused=True)
        # Verified once: it rewrites the sentences' passage numbers into citation numbers,
        # so verifying them again would read those as passage numbers.
        citations = verify(sentences, passages, scorer)
        if not any(s.supported for s in sentences):
            return None
        return Draft(sentences=sentences, citations=citations)


def _plausible_rewrite(condensed: str, question: str, history: list[dict[str, Any]]) -> bool:
    """A question that keeps a subject of the conversation's questions."""
    asked = " ".join([question, *user_turns(history)])
    return "?" in condensed and bool(set(content_terms(condensed)) & set(content_terms(asked)))


def _renumber(sentences: list[AnswerSentence], citations: list[Citation]) -> list[Citation]:
    """Number citations 1, 2, 3... in order of first use, whatever passage they came from."""
    by_old = {c.n: c for c in citations}
    mapping: dict[int, int] = {}
    for sentence in sentences:
        for n in sentence.citations:
            if n in by_old and n not in mapping:
                mapping[n] = len(mapping) + 1
        sentence.citations = [mapping[n] for n in sentence.citations if n in mapping]
    out = []
    for old, new in sorted(mapping.items(), key=lambda kv: kv[1]):
        citation = by_old[old]
        citation.n = new
        out.append(citation)
    return out


def _retrieved(p: Passage) -> dict[str, Any]:
    return {"chunk_id": p.chunk_id, "article_id": p.article_id, "path": p.path, "url": p.url,
            "title": p.title, "score": round(p.score, 4), "start": p.start, "end": p.end}


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


__all__ = ["REFUSAL", "AnswerResult", "Engine", "Filters"]

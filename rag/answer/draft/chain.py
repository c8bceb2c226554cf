"""The `Answerer` interface, and the extractive answerer that needs no LLM.

The engine tries its answerers in order (`Engine.answerers`: the LLM, then the
extractive one) and takes the first draft that stands; `rag.answer.draft.llm.LLMAnswerer` is the
other implementation. A new answerer (another model API, a rules engine) implements
this protocol and joins the chain there.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Protocol

from rag.answer.draft.extractive import HeuristicReader, SentencePicker, bm25_idf, bm25_known
from rag.answer.readers.base import Reader
from rag.dates.parse import DateFilter
from rag.store.articles import ArticleStore
from rag.store.keyword import KeywordIndex
from rag.types import AnswerMode, Draft, Passage


class Answerer(Protocol):
    mode: AnswerMode
    model: str | None  # the model that writes its text, if any
    streams_text: bool  # its draft's deltas are the answer's text as shown
    must_be_supported: bool  # a draft with no supported sentence is discarded
    refusal_stands: bool  # its "the articles don't say" is shown, not passed on down the chain
    # Optional (absent is False): `draft` also takes `window=`, the date filter the
    # question's dates became when one was applied. An answerer that matches the
    # question's words against sentences needs it: a passage the filter kept for its
    # dates need not say "2024" again. A model reads the dates in the question itself.
    takes_window: bool

    def condense(self, question: str, history: list[dict[str, Any]]) -> str | None:
        """A standalone form of a follow-up, or None to keep the rule-based rewrite."""
        ...

    def draft(self, question: str, passages: list[Passage]) -> Generator[str, None, Draft]:
        """Yields text as it is written, returns the draft (claims cite passage numbers)."""
        ...


class ExtractiveAnswerer:
    """The retrieved sentences that best answer the question, verbatim (`SentencePicker`),
    chosen by its `reader` (`rag.answer.readers.base`; the heuristic one unless one is injected)."""

    mode = AnswerMode.EXTRACTIVE
    model = None
    streams_text = False  # the text goes out once it is checked and numbered
    must_be_supported = False  # quoted sentences support themselves; it is the last resort
    refusal_stands = True
    takes_window = True

    def __init__(self, store: ArticleStore, keyword: KeywordIndex,
                 reader: Reader | None = None) -> None:
        self.store, self.keyword = store, keyword
        self.reader = reader or HeuristicReader()  # which candidate sentences answer

    def condense(self, question: str, history: list[dict[str, Any]]) -> str | None:
        return None

    def picker(self) -> SentencePicker:
        """Weighted by the library's word statistics as they are now."""
        bm25 = self.keyword.ensure()
        if bm25 is None:
            return SentencePicker(self.store.embed_model, reader=self.reader)
        return SentencePicker(self.store.embed_model, idf=bm25_idf(bm25.bm25),
                              known=bm25_known(bm25.bm25), reader=self.reader)

    def could_answer(self, question: str, passages: list[Passage],
                     window: DateFilter | None = None) -> bool:
        """Whether a draft over these passages alone would pass the reader's gates
        (`SentencePicker.could_answer`)."""
        return self.picker().could_answer(question, passages, window)

    def draft(self, question: str, passages: list[Passage],
              window: DateFilter | None = None) -> Generator[str, None, Draft]:
        return self.picker().answer(question, passages, window)
        yield  # a generator, like every answerer's draft, that streams nothing

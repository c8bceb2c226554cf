"""The `Answerer` interface, the extractive answerer that needs no LLM, and the
`Answerers` an engine is given.

The engine tries its answerers in order (`Engine.chain`: the model that writes, then
the extractive one) and takes the first draft that stands; `rag.answer.draft.llm.LLMAnswerer`
and `rag.answer.draft.local.LocalAnswerer` are the other implementations. A new answerer
(another model API, a rules engine) implements this protocol and joins `Answerers`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Protocol

from rag.answer.draft.extractive import HeuristicReader, SentencePicker
from rag.answer.readers.base import Reader
from rag.dates.parse import DateFilter
from rag.store.articles import ArticleStore
from rag.store.keyword import KeywordIndex
from rag.types import AnswerMode, Checked, Draft, Passage


class Answerer(Protocol):
    mode: AnswerMode
    model: str | None  # the model that writes its text, if any
    streams_text: bool  # its draft's deltas are the answer's text as shown
    must_be_supported: bool  # a draft with no supported sentence is discarded
    refusal_stands: bool  # its "the articles don't say" is shown, not passed on down the chain
    # Whether `draft` is given `window=`, the date filter the question's dates became
    # when one was applied (else it gets None). An answerer that matches the question's
    # words against sentences needs it: a passage the filter kept for its dates need
    # not say "2024" again. A model reads the dates in the question itself (False).
    takes_window: bool

    def condense(self, question: str, history: list[dict[str, Any]]) -> str | None:
        """A standalone form of a follow-up, or None to keep the rule-based rewrite."""
        ...

    def draft(self, question: str, passages: list[Passage],
              window: DateFilter | None = None) -> Generator[str, None, Draft]:
        """Yields text as it is written, returns the draft (claims cite passage numbers)."""
        ...


def stands(draft: Draft, checked: list[Checked], answerer: Answerer) -> bool:
    """Whether a draft is shown: one that must be supported needs a supported sentence;
    a refusal stands where the answerer's refusals are believed (the articles may
    indeed not say), and is passed on down the chain where they are not."""
    if draft.refused:
        return answerer.refusal_stands
    return not answerer.must_be_supported or any(c.supported for c in checked)


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
        terms = self.keyword.ensure()
        if terms is None:
            return SentencePicker(self.store.embed_model, reader=self.reader)
        return SentencePicker(self.store.embed_model, idf=terms.idf(), known=terms.known(),
                              reader=self.reader)

    def could_answer(self, question: str, passages: list[Passage],
                     window: DateFilter | None = None) -> bool:
        """Whether a draft over these passages alone would pass the reader's gates
        (`SentencePicker.could_answer`)."""
        return self.picker().could_answer(question, passages, window)

    def draft(self, question: str, passages: list[Passage],
              window: DateFilter | None = None) -> Generator[str, None, Draft]:
        return self.picker().answer(question, passages, window)
        yield  # a generator, like every answerer's draft, that streams nothing


class Answerers:
    """The answerers an engine drafts with: `extractive`, last in every chain; `llm`, an
    endpoint's model (None: no endpoint); `local`, what loads the local model's answerer
    (or None and, for the operator, why it cannot be had), called the first time a
    generated answer is asked for with no endpoint."""

    def __init__(self, extractive: ExtractiveAnswerer, llm: Answerer | None = None,
                 local: Callable[[], tuple[Answerer | None, str]] | None = None) -> None:
        self.extractive, self.llm = extractive, llm
        self._load_local = local
        self._local: tuple[Answerer | None, str] | None = None

    @property
    def local(self) -> tuple[Answerer | None, str] | None:
        """The local model's answerer (None, and why), or None while it is not loaded."""
        return self._local

    def writer(self) -> Answerer | None:
        """What writes a generated answer: the endpoint's model, else the local model's
        (loaded on the first call), else nothing."""
        if self.llm is not None:
            return self.llm
        if self._local is None:
            self._local = (self._load_local() if self._load_local is not None
                           else (None, "no local model was given"))
        return self._local[0]

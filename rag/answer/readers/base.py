"""The reader seam: which candidate sentences state the answer, and how sure.

An extractive answer is verbatim sentences of the retrieved passages. The sentence
picker (`rag.answer.draft.extractive.SentencePicker`) finds the candidates and measures them
(meaning, the question's words, the kind of thing asked for); a `Reader` decides
which of them answer, or that none does. `rag.answer.draft.extractive.HeuristicReader` decides from
those measures with weights and thresholds calibrated on our question sets; the LLM
reader (`rag.answer.readers.llm`: the local model reads a learned shortlist of the
candidates and a learned chooser picks among them) plugs in here too. A reader only
ever returns some of the candidates it was given, so the answer stays quoted and
cited; the chosen span and score travel on the claim (`rag.types.Claim`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    import numpy as np

    from rag.types import Passage


@dataclass(eq=False)
class Candidate:
    """One sentence of one passage, by offsets in the passage's text, with the picker's
    measures of it (filled in by the picker; a reader reads them, never writes them).
    Compared by identity: each is one place in one passage (and a field-by-field
    comparison would reach the numpy vector)."""

    passage: int  # 0-based index into the passages
    start: int
    end: int
    text: str
    dense: float = 0.0  # MiniLM similarity to the question
    lexical: float = 0.0  # the question's weighted words, in it or its passage
    own: float = 0.0  # ... in the sentence itself
    context: float = 0.0  # `own` of the best neighbouring sentence
    novelty: float = 1.0  # share of its words the question did not use
    typed: bool = False  # holds the kind of thing the question asks for
    vector: np.ndarray | None = field(default=None, repr=False)  # unit MiniLM vector


@dataclass(frozen=True)
class Pick:
    candidate: Candidate
    score: float  # the reader's confidence that this sentence states the answer


@dataclass(frozen=True)
class Reading:
    """A reader's verdict: the sentences that answer, best first, or none (refused)."""

    picks: list[Pick] = field(default_factory=list)
    reader: str = ""

    @property
    def refused(self) -> bool:
        return not self.picks


@dataclass(frozen=True)
class Question:
    """What a reader is asked: the question, its kind (`rag.answer.draft.extractive.question_type`),
    and the passages the candidates come from (for headlines and stories)."""

    text: str
    kind: str
    passages: list[Passage]


class Reader(Protocol):
    name: str

    def read(self, question: Question, candidates: list[Candidate]) -> Reading:
        """The candidates that state the answer (a subset, best first), or none."""
        ...

    def passes_gates(self, question: Question, candidates: list[Candidate],
                     offered: bool = False) -> bool:
        """Whether the candidates pass the gates any answer of this reader must pass,
        with no sentence chosen and no model asked: cheap enough to ask of each story
        a question back might offer (`offered`: stricter, as such a story must be).
        A reader built on the heuristic one passes on its gates
        (`rag.answer.draft.extractive.HeuristicReader.passes_gates`)."""
        ...

    def warm(self) -> None:
        """Get ready for the first question (a model reader computes its fixed prompt);
        the app calls it at start-up, in the background."""
        ...


class ReaderChoice(NamedTuple):
    """The reader that answers; `note`: for the answer's `reader_note`, why it is not the
    LLM reader, in words for anyone; `why`: the same for the operator (the log, the
    editors' view), with what to do about it (`rag.answer.readers.llm.reader_for`)."""

    reader: Reader
    note: str = ""
    why: str = ""

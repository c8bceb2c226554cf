"""The answer's types, in one place: what flows from retrieval to a cited answer.

    Passage  --draft-->  Claim (cites passage numbers)  --verify-->  Checked (cites spans)
             --number-->  AnswerSentence (cites citation numbers) + Citation  -->  Answer

Each stage makes new objects (all frozen: no field is reassigned, no list changed
after it is built), so a number always means one thing: a
claim's numbers index the passages it was given; an answer sentence's numbers are
the citations' own `n`, assigned once by `rag.answer.verify.number_citations`.

`Answer.to_json()` is the one JSON form (CLI `--json`, the app's API and export, eval
records). A source file is `file_path` there, not `path`: gradio_client takes any
dict with a `path` key for a file to download. Reading JSON back accepts either.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

REFUSAL = "The articles don't say. None of the retrieved passages answers this question."


class AnswerMode(StrEnum):
    AUTO = "auto"  # the LLM when one is configured, else extractive
    EXTRACTIVE = "extractive"
    LLM = "llm"


class RetrievalMode(StrEnum):
    HYBRID = "hybrid"
    DENSE = "dense"
    BM25 = "bm25"


def choices(modes: type[StrEnum]) -> list[str]:
    """The values, for argparse `choices` and help texts."""
    return [m.value for m in modes]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, use_enum_values=True)


def _path_field() -> Any:
    return Field(default=None, serialization_alias="file_path",
                 validation_alias=AliasChoices("path", "file_path"))


class Passage(_Frozen):
    """A retrieved chunk with everything a citation needs."""

    chunk_id: str
    article_id: str
    text: str
    start: int  # the chunk's span in the article's stored text
    end: int
    score: float
    title: str = ""
    url: str | None = None
    path: str | None = _path_field()
    published: str | None = None
    outlet: str | None = None
    paragraph: int = 0
    story: str | None = None  # near-duplicate group (wire copies, versions) it belongs to


class Span(_Frozen):
    """The part of a passage that supports a claim, as offsets in the article."""

    passage: int  # 0-based index into the passages
    start: int
    end: int


class Claim(_Frozen):
    """A draft sentence: `passages` are 1-based numbers into the passages it was given.

    A quoted sentence carries where it was quoted from (`span`, offsets in the article)
    and the reader's confidence in it (`score`), so its citation is that span, not the
    first place its words happen to occur. A model's sentence has neither."""

    text: str
    passages: list[int] = Field(default_factory=list)
    span: Span | None = None
    score: float | None = None


class Draft(_Frozen):
    """What an answerer wrote, before any check."""

    claims: list[Claim] = Field(default_factory=list)
    refused: bool = False
    notice: str = ""


class Checked(_Frozen):
    """A claim after verification: the spans that support it, best score first."""

    text: str
    spans: list[Span] = Field(default_factory=list)
    supported: bool = False
    score: float = 0.0


class Citation(_Frozen):
    n: int
    article_id: str = ""
    title: str = ""
    url: str | None = None
    path: str | None = _path_field()
    published: str | None = None
    chunk_id: str = ""
    start: int = 0  # span of the supporting text in the article
    end: int = 0
    quote: str = ""
    outlet: str | None = None
    event_date: str | None = None  # ISO day the quoted sentence speaks of ("on Monday" read)
    event_text: str | None = None  # that day as shown: "28 Apr 2025"
    story: str | None = None
    also_in: list[Related] = Field(default_factory=list)  # other copies of the story


class Related(_Frozen):
    """Another article telling the same story (a wire copy, another version)."""

    article_id: str
    title: str = ""
    outlet: str | None = None
    published: str | None = None
    url: str | None = None


class AppliedFilter(_Frozen):
    """The date range a question's words became, shown so the user can drop it."""

    first: str | None = None  # ISO; None: open
    last: str | None = None
    phrase: str = ""  # the words it came from: "in March"
    text: str = ""  # "1–31 Mar 2025"
    anchor: str = ""  # ISO day relative dates were read against
    anchor_note: str = ""  # "today", "as of 3 Mar 2025", "the newest article (…)"


class TimelineEvent(_Frozen):
    date: str  # ISO
    date_text: str = ""
    sentence: str = ""
    citation: int = 0  # Citation.n
    before: bool = False  # how things stood before the dates asked ("what changed since…")


class AnswerSentence(_Frozen):
    text: str
    citations: list[int] = Field(default_factory=list)  # Citation.n of each source it cites
    supported: bool = False
    score: float = 0.0


class Choice(_Frozen):
    """A story a question may be about, offered back when the question names none."""

    article_id: str
    title: str = ""
    published: str | None = None
    question: str = ""  # the question, asked about this story


class Retrieved(_Frozen):
    """A passage the answer was drawn from, as reported (without its text)."""

    chunk_id: str
    article_id: str
    path: str | None = _path_field()
    url: str | None = None
    title: str = ""
    score: float = 0.0
    start: int = 0
    end: int = 0


class Answer(_Frozen):
    question: str = ""
    standalone_question: str = ""  # the question as retrieval saw it (follow-ups rewritten)
    answer: str = ""
    refused: bool = False
    mode: AnswerMode = AnswerMode.EXTRACTIVE  # the answerer whose text is shown
    model: str | None = None  # the LLM that wrote text, if one did
    citations: list[Citation] = Field(default_factory=list)
    sentences: list[AnswerSentence] = Field(default_factory=list)
    retrieved: list[Retrieved] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    notice: str = ""  # e.g. why an LLM answer fell back to the extractive one
    clarify: list[Choice] = Field(default_factory=list)  # set: a question back, not an answer
    date_filter: AppliedFilter | None = None
    timeline: list[TimelineEvent] = Field(default_factory=list)  # oldest first
    # Who chose a verbatim answer's sentences ("llm": the local model with the learned
    # decision; "heuristic"), and why the other was not used, if it was not chosen.
    reader: str = ""
    reader_note: str = ""

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def with_notice(self, notice: str) -> Answer:
        return self.model_copy(update={"notice": "; ".join(x for x in (self.notice, notice)
                                                          if x)})


class Turn(_Frozen):
    """One exchange of a conversation, as the app keeps and exports it."""

    question: str = ""
    result: Answer = Field(default_factory=Answer)


def answer_text(sentences: list[AnswerSentence]) -> str:
    """The answer as plain text with `[n]` markers after each sentence."""
    return " ".join(f"{s.text} {''.join(f'[{n}]' for n in s.citations)}".strip()
                    for s in sentences)

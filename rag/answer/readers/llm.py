"""The LLM reader: the local model reads the likeliest candidate sentences, and a learned
chooser picks the one that states the answer, or refuses.

Contract: `reader_for(settings)` is the reader the settings ask for: the LLM reader
wherever the local model runs (RAG_READER auto or llm), else the heuristic one, with
why. `LLMReader.read` refuses, without a model call, what the heuristic's gates refuse;
otherwise the model reads the best `k` candidates by the learned shortlist, one at a
time, each asked "does this sentence state the answer?" (P(yes) from the logits of one
token, nothing generated), and the learned chooser picks the sentence that leads the
answer (the heuristic's selection from that sentence's story completes it), or refuses
when none is sure enough (`rag.answer.readers.learned`, fitted by `python -m
eval.fit_reader`). The instructions, worked examples and question come first in every
prompt, so they are computed once (the examples' state is kept on disk) and each
sentence costs only its own tokens (`rag.local_model.runtime`).

Why a learned chooser rather than a veto of the heuristic's pick:
docs/decisions/learned-reader.md; why the worked examples (`SHOTS`):
docs/decisions/reader-prompt.md.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from rag.answer.draft.extractive import HeuristicReader
from rag.answer.readers.base import Candidate, Pick, Question, ReaderChoice, Reading
from rag.answer.readers.learned import ReaderModel, cheap_features, with_model_features
from rag.local_model.runtime import LocalLLM, LocalModelError, local_llm, shared_prefix
from rag.settings import Settings

logger = logging.getLogger(__name__)

SYSTEM = ("You check whether a sentence from a news article answers a question. Reply Yes or "
          "No. Say Yes only when the sentence itself gives what is asked for (the name, number, "
          "date, reason or way); a sentence on the same topic without it gets No.")
# Worked examples shown before every question (question, sentence, reply): made up, so
# that no evaluation article is among them; half on the asked topic without the fact.
SHOTS = (
    ("How much did Harwell Foods pay for the Brightloaf bakery chain?",
     "Harwell Foods has agreed to buy the Brightloaf bakery chain, the company said on Monday.",
     "No"),
    ("Which company makes the Zephyr electric scooter?",
     "A spokeswoman for Calder Motors, which makes the Zephyr electric scooter, declined to "
     "comment.", "Yes"),
    ("Who replaced Ana Ruiz as head of the Port Vell authority?",
     "Ana Ruiz, who ran the Port Vell authority for six years, resigned on Friday after a row "
     "over funding.", "No"),
    ("Why was the Tarn bridge closed?",
     "The bridge was shut to traffic after engineers found cracks in two of its supports.", "Yes"),
    ("When did the Pellam museum reopen after the floods?",
     "The Pellam museum, which closed for repairs after the floods, has drawn record crowds.",
     "No"),
    ("How many jobs will go at the Linford plant?",
     "About 400 staff at the Linford plant will lose their jobs by March, the union said.", "Yes"),
)
MAX_WORDS = 30  # a longer sentence is cut for the prompt only (it is quoted whole)


def _clip(text: str, words: int = MAX_WORDS) -> str:
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words]) + " …"


def sentence_prompt(question: str, sentence: str) -> str:
    """The sentence last: what precedes it is the same for every sentence of a question."""
    return (f"Question: {question}\nDoes the following sentence state the answer to this "
            f"question?\nSentence: {_clip(sentence)}")


class YesNo:
    """The local model asked of one sentence at a time: does it state the answer?"""

    def __init__(self, model: LocalLLM) -> None:
        self.model = model
        self._yes = model.token_ids("Yes", " Yes", "yes", "YES")
        self._no = model.token_ids("No", " No", "no", "NO")
        self._shots = [(sentence_prompt(q, sentence), reply) for q, sentence, reply in SHOTS]
        # The prompt's tokens before the question, and where their state is kept.
        self._fixed: tuple[list[int], Path] | None = None

    def prompt(self, question: str, sentence: str) -> list[int]:
        return self.model.chat_tokens(SYSTEM, sentence_prompt(question, sentence), self._shots)

    def yes_one(self, question: str, sentence: str) -> float:
        """P(yes) for one sentence."""
        return self.model.yes_probability(self.prompt(question, sentence), self._yes, self._no)

    def yes(self, question: str, candidates: list[Candidate]) -> list[float]:
        """P(yes) of each candidate, in the order given."""
        return [self.yes_one(question, cand.text) for cand in candidates]

    def warm(self) -> None:
        """Have the instructions and worked examples (434 tokens, 8 s to compute on 2
        cores) in the model's cache: loaded from where an earlier process kept them, or
        computed once and kept there. Called before every reading too: the local
        answerer's prompt (same model) takes their place in the cache."""
        if self._fixed is None:
            one, two = self.prompt("Why?", "One."), self.prompt("Who?", "Two.")
            fixed = one[: shared_prefix(one, two)]
            self._fixed = (fixed, self.model.saved_prefix(fixed))
        self.model.prefix_ready(*self._fixed)


class LLMReader(YesNo):
    """Reads the candidates the learned shortlist ranks best with the local model and
    lets the learned chooser pick the sentence that states the answer, or refuse
    (`rag.answer.readers.learned`; fitted on dev questions by `python -m eval.fit_reader`)."""

    name = "llm"

    def __init__(self, model: LocalLLM, heuristic: HeuristicReader | None = None,
                 learned: ReaderModel | None = None) -> None:
        super().__init__(model)
        self.heuristic = heuristic or HeuristicReader()
        self.learned = learned or ReaderModel.load()

    def passes_gates(self, question: Question, candidates: list[Candidate],
                     offered: bool = False) -> bool:
        """The heuristic's gates: every answer this reader gives passes them (`read`)."""
        return self.heuristic.passes_gates(question, candidates, offered)

    def read(self, question: Question, candidates: list[Candidate]) -> Reading:
        rows = cheap_features(question, candidates, self.heuristic)
        # The heuristic's gates first (the question's words or meaning matched, and the
        # asked-for figure, date or name there; the `gate` measure): what they refuse, no
        # reader answers (a story offered back is checked by them alone:
        # `passes_gates`).
        if not rows or not rows[0]["gate"]:
            return Reading(reader=self.name)
        started = time.monotonic()
        learned = self.learned
        order = np.argsort(-learned.shortlist.probability(rows), kind="stable")[: learned.k]
        self.warm()
        # Read one at a time, best first; a sentence the chooser is sure of ends the
        # reading (each costs 0.5-1 s on 2 cores).
        p_yes: list[float] = []
        for i in order:
            p_yes.append(self.yes_one(question.text, candidates[i].text))
            chosen = learned.chooser.probability(with_model_features(
                [rows[j] for j in order[: len(p_yes)]], p_yes))
            if float(chosen.max()) >= learned.stop_at:
                break
        logger.debug("llm reader: P(yes)=%s, chooser=%s in %.2f s",
                     [round(y, 2) for y in p_yes], [round(float(p), 2) for p in chosen],
                     time.monotonic() - started)
        if float(chosen.max()) < learned.threshold:
            return Reading(reader=self.name)
        # The chooser's sentence leads; the heuristic's selection, from that sentence's
        # story, completes the answer as before (a cause or figure often takes two).
        best = candidates[order[int(chosen.argmax())]]
        ranked = self.heuristic.rank(question, candidates)
        lead = Pick(best, ranked[0].score)  # first, as the heuristic's own best would be
        picks = self.heuristic.select([lead, *(p for p in ranked if p.candidate is not best)],
                                      question)
        return Reading(picks=picks, reader=self.name)


def reader_for(settings: Settings) -> ReaderChoice:
    """The reader the settings ask for. `auto` (the default) is the LLM reader wherever
    the local model runs, since it measures better (README, "Readers compared"), and the
    heuristic reader elsewhere. With the local model absent, its hash wrong or llama.cpp
    unable to run it, the answers still come, from the heuristic reader; what to do about
    it is the operator's business, so it goes to the log (a warning) and `why`, not to
    answers."""
    if settings.reader == "heuristic":
        return ReaderChoice(HeuristicReader(), "RAG_READER=heuristic", "RAG_READER=heuristic")
    try:
        reader = LLMReader(local_llm(settings))
    except LocalModelError as exc:
        logger.warning("local reader unavailable, the heuristic reader answers: %s", exc)
        return ReaderChoice(HeuristicReader(), "the local reader is unavailable on this server",
                            f"the local reader is unavailable: {exc}")
    logger.info("the LLM reader answers (%s; reads at most %d sentences a question)",
                reader.model.path.name, reader.learned.k)
    return ReaderChoice(reader)

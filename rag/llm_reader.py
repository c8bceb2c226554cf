"""The LLM reader: the heuristic reader's answer, vetoed by a local model when none
of the heuristic's best sentences states the answer.

The model is asked, sentence by sentence, "does this state the answer?", and Yes/No
is read from the logits of one token (one forward pass per sentence, nothing
generated). The instructions, the worked examples and the question come first, so
they are computed once (the examples once per process, the question once per
question) and each sentence costs only its own tokens (`rag.local_llm`).

Why a veto, not a chooser: on our dev questions (bbc_qa_dev) the model picked the
right sentence hardly more often than the heuristic, but told answerable from
unanswerable questions far better (ROC AUC of its best P(yes) over the top three
0.85-0.90, against 0.61 for the heuristic's best score). Blending the two scores to
choose and to refuse was worse on every figure than keeping the heuristic's choice
and letting the model refuse.

Why the worked examples (`SHOTS`, written for this, about made-up places and firms):
asked cold, the 1.5B said No to plain answers ("...SSL, which makes the famous Durex
brand..." for "what brand does SSL make?": P(yes) 0.08), so any threshold that
refused unanswerable questions refused answerable ones too (dev: refusal 0.72 with
false refusal 0.10). Six examples, half of them sentences on the asked topic without
the asked fact, moved its answers apart: at P(yes) < 0.27 for all three sentences,
refusal of unanswerable questions rose from the heuristic's 0.28 to 0.50 with no
answerable question refused that the heuristic answered (false refusal 0.033 for
both, answer_contains 0.806 for both). The plateau runs from 0.25 to 0.30; 0.27 is
its middle. Asking the model to copy the answering words instead (or "NONE") chose
sentences better but hardly ever refused (AUC 0.60); giving it the headline and the
sentence before was worse (AUC 0.81).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rag.extractive import HeuristicReader
from rag.local_llm import LocalLLM, LocalModelError, local_llm, shared_prefix
from rag.reader import Candidate, Question, Reader, Reading
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


class LLMReader:
    """`shortlist`: the heuristic's best sentences read by the model; `min_yes`: below
    this P(yes) for all of them, the question is refused. Both tuned on dev only."""

    name = "llm"

    def __init__(self, model: LocalLLM, heuristic: HeuristicReader | None = None,
                 shortlist: int = 3, min_yes: float = 0.27) -> None:
        self.model, self.heuristic = model, heuristic or HeuristicReader()
        self.shortlist, self.min_yes = shortlist, min_yes
        self._yes = model.token_ids("Yes", " Yes", "yes", "YES")
        self._no = model.token_ids("No", " No", "no", "NO")
        self._shots = [(sentence_prompt(q, sentence), reply) for q, sentence, reply in SHOTS]
        # The prompt's tokens before the question, and where their state is kept.
        self._fixed: tuple[list[int], Path] | None = None

    def prompt(self, question: str, sentence: str) -> list[int]:
        return self.model.chat_tokens(SYSTEM, sentence_prompt(question, sentence), self._shots)

    def yes(self, question: str, candidates: list[Candidate]) -> list[float]:
        """P(yes) of each candidate, in the order given."""
        return [self.model.yes_probability(self.prompt(question, cand.text), self._yes, self._no)
                for cand in candidates]

    def warm(self) -> None:
        """Have the instructions and worked examples (427 tokens, 7 s to compute on 2
        cores) in the model's cache: loaded from where an earlier process kept them, or
        computed once and kept there. Called before every reading too: the local
        answerer's prompt (same model) takes their place in the cache."""
        if self._fixed is None:
            one, two = self.prompt("Why?", "One."), self.prompt("Who?", "Two.")
            fixed = one[: shared_prefix(one, two)]
            self._fixed = (fixed, self.model.saved_prefix(fixed))
        self.model.prefix_ready(*self._fixed)

    def read(self, question: Question, candidates: list[Candidate]) -> Reading:
        started = time.monotonic()
        reading = self.heuristic.read(question, candidates)
        if reading.refused:
            return Reading(reader=self.name)  # nothing to check: no model call
        self.warm()
        ranked = self.heuristic.rank(question, candidates)[: self.shortlist]
        # One Yes is enough to let the answer stand, so the reading stops there: the
        # heuristic's best sentence is usually it (dev: 1.24 model calls a question, not 3).
        probs: list[float] = []
        for pick in ranked:
            probs.extend(self.yes(question.text, [pick.candidate]))
            if probs[-1] >= self.min_yes:
                break
        logger.debug("llm reader: P(yes)=%s in %.2f s", [round(y, 2) for y in probs],
                     time.monotonic() - started)
        if max(probs) < self.min_yes:
            return Reading(reader=self.name)
        return Reading(picks=reading.picks, reader=self.name)


def reader_for(settings: Settings) -> tuple[Reader, str]:
    """The reader the settings ask for, and a notice when it had to be another (shown
    once). `auto` (the default) is the LLM reader wherever it can run, since it
    measures better (README, "Readers compared"), and the heuristic reader elsewhere:
    `make run` needs no compiler, and llama.cpp has to be compiled (`make reader`).
    With the local model absent, its hash wrong or llama.cpp unable to run it, the
    answers still come, from the heuristic reader, and the notice says why."""
    if settings.reader == "heuristic":
        return HeuristicReader(), ""
    try:
        return LLMReader(local_llm(settings)), ""
    except LocalModelError as exc:
        logger.warning("local reader unavailable: %s", exc)
        if settings.reader == "auto":
            return HeuristicReader(), (f"answered by the heuristic reader: the local reader "
                                       f"model is not available ({exc}); `make reader` "
                                       "installs it")
        return HeuristicReader(), f"{exc}; the heuristic reader answers instead"

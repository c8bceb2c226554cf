"""Generated answers from the local model (answer mode `llm` with no endpoint set).

The same instructions and numbered passages as any LLM's (`rag.answer.draft.llm`), written by the
local model through llama.cpp in this process, and checked sentence by sentence like
any model's: a draft with nothing supported falls back to the verbatim answer. The
1.5B on 2 cores reads ~70 prompt tokens a second and writes ~10, so it gets the best
few passages only, and the wall-clock deadline (RAG_LLM_TIMEOUT) holds whatever the
model is doing: waiting for it (another answer has it), reading the prompt (checked
every 64 tokens, about a second) or writing (every token); then the fallback answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from typing import Any

from rag.answer.draft.llm import SYSTEM_PROMPT, LLMError, format_passages, parse_answer
from rag.dates.parse import DateFilter
from rag.local_model.runtime import DeadlinePassed, LocalLLM, LocalModelError, local_llm
from rag.settings import Settings
from rag.types import AnswerMode, Draft, Passage

logger = logging.getLogger(__name__)
MAX_PASSAGES = 3  # ~150 tokens each: the prompt stays near 5 s on 2 cores
STOP = ["<|im_end|>", "<|endoftext|>"]


class LocalAnswerer:
    """An `Answerer` (rag.answer.draft.chain) that writes with the local model."""

    mode = AnswerMode.LLM
    streams_text = True
    must_be_supported = True
    # Its refusals are passed on to the extractive answerer (and its reader's veto):
    # on 24 bbc_qa_test questions the 1.5B said "the articles don't say" to 15 of the
    # 19 that the passages answer.
    refusal_stands = False
    takes_window = False  # it reads the dates in the question itself

    def __init__(self, model: LocalLLM, settings: Settings,
                 max_passages: int = MAX_PASSAGES) -> None:
        self.local, self.settings, self.max_passages = model, settings, max_passages

    @property
    def model(self) -> str:
        return f"local:{self.local.path.stem}"

    def condense(self, question: str, history: list[dict[str, Any]]) -> str | None:
        return None  # the rule-based rewrite: a model's costs seconds of prompt

    def draft(self, question: str, passages: list[Passage],
              window: DateFilter | None = None) -> Generator[str, None, Draft]:
        given = passages[: self.max_passages]
        user = f"Passages:\n\n{format_passages(given)}\n\nQuestion: {question}"
        tokens = self.local.chat_tokens(SYSTEM_PROMPT, user)
        deadline = time.monotonic() + self.settings.llm_timeout
        parts: list[str] = []
        stream = self.local.stream(tokens, self.settings.llm_max_tokens, STOP, deadline)
        try:
            for delta in stream:
                parts.append(delta)
                yield delta
        except DeadlinePassed as exc:
            logger.info("%s", exc)
            raise LLMError(f"the local model did not finish within "
                           f"{self.settings.llm_timeout:g} s (RAG_LLM_TIMEOUT)") from None
        finally:
            stream.close()  # stops generating; the model's lock is released
        return parse_answer("".join(parts))


def local_answerer(settings: Settings) -> tuple[LocalAnswerer | None, str]:
    """The local answerer, or None and one line for the operator saying why it can't be
    had (what to do about it included; not for answers)."""
    try:
        return LocalAnswerer(local_llm(settings), settings), ""
    except LocalModelError as exc:
        logger.warning("local model unavailable: %s", exc)
        return None, f"no LLM endpoint configured and the local model is unavailable: {exc}"

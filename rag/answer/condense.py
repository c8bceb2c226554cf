"""Follow-up questions to standalone ones, so retrieval sees what the user means.

`condense` asks the first answerer of the chain (an LLM's rewrite, see
`rag.answer.draft.llm`) and keeps it only when it is plausible. Without one, this
deterministic rewrite carries the earlier turn's subject: "why?" after "what
happened to Iran-Azerbaijan relations?" becomes a question about those relations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rag.text import STOPWORDS, content_terms
from rag.types import Turn

if TYPE_CHECKING:
    from rag.answer.draft.chain import Answerer

_FOLLOW_UP_START = re.compile(
    r"^(and|but|so|also|then|what about|how about|why|why not|how come|how so|really|"
    r"what else|anything else|who else|and then|what did (he|she|they|it)|is that|was that)\b",
    re.I,
)
_PRONOUN = re.compile(r"\b(it|its|they|them|their|he|him|his|she|her|this|that|these|those|"
                      r"there|the two|both|each other)\b", re.I)
_QUESTION_WORDS = {"what", "why", "how", "who", "whom", "whose", "when", "where", "which",
                   "did", "does", "do", "is", "are", "was", "were", "can", "could", "will",
                   "would", "should", "tell", "me", "about", "explain", "describe", "happen",
                   "happened", "say", "said"}


def user_turns(history: list[dict[str, Any]] | None) -> list[str]:
    """The user's earlier questions, oldest first (assistant turns are not needed)."""
    turns = []
    for turn in history or []:
        if isinstance(turn, dict) and turn.get("role") == "user" and turn.get("content"):
            turns.append(str(turn.get("standalone") or turn["content"]))
    return turns


def is_follow_up(question: str) -> bool:
    words = re.findall(r"[\w'’-]+", question.lower())
    content = [w for w in words if w not in STOPWORDS and w not in _QUESTION_WORDS]
    return (len(content) <= 2 or bool(_FOLLOW_UP_START.match(question.strip()))
            or (len(content) <= 5 and bool(_PRONOUN.search(question))))


def subject_of(question: str) -> list[str]:
    """The content words of a question, in order: what it is about."""
    words = re.findall(r"[A-Za-z][\w'’-]*|\d+", question)
    return [w for w in words if w.lower() not in STOPWORDS and w.lower() not in _QUESTION_WORDS]


def rewrite(question: str, history: list[dict[str, Any]] | None) -> str:
    """A standalone question: the follow-up plus the earlier subject it leaves out."""
    question = " ".join(question.split())
    earlier = user_turns(history)
    if not earlier or not is_follow_up(question):
        return question
    previous = earlier[-1]
    present = {w.lower() for w in subject_of(question)}
    carried = [w for w in subject_of(previous) if w.lower() not in present]
    if not carried:
        return question
    core = question.rstrip(" ?")
    core = re.sub(r"^(and|but|so|also|then)\s+", "", core, flags=re.I)
    if re.fullmatch(r"(why|why not|how come|how so|really)", core, re.I):
        return f"{previous.rstrip(' ?')}? {core.capitalize()}?"
    return f"{core[:1].upper()}{core[1:]}? (about: {' '.join(dict.fromkeys(carried))})"


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


def _plausible_rewrite(condensed: str, question: str, history: list[dict[str, Any]]) -> bool:
    """A question that keeps a subject of the conversation's questions."""
    asked = " ".join([question, *user_turns(history)])
    return "?" in condensed and bool(set(content_terms(condensed)) & set(content_terms(asked)))


def history_of(turns: Iterable[Turn]) -> list[dict[str, str]]:
    """A conversation's turns as the engine takes history: user questions (with the
    standalone form the engine made of them, so follow-ups of follow-ups chain) and
    plain answer text."""
    history: list[dict[str, str]] = []
    for turn in turns:
        user = {"role": "user", "content": turn.question}
        if turn.result.standalone_question:
            user["standalone"] = turn.result.standalone_question
        history.append(user)
        if turn.result.answer:
            history.append({"role": "assistant", "content": turn.result.answer})
    return history

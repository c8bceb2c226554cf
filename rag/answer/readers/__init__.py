"""Readers: which measured candidate sentences state the answer, best first, or none to
refuse (`base.Reader`). The heuristic reader is the picker's own
(`rag.answer.draft.extractive.HeuristicReader`); the LLM reader (`llm`) has the local
model read a learned shortlist and a learned decision choose (`learned`,
`reader_model.json`, fitted by `python -m eval.fit_reader`)."""

from rag.answer.readers.base import Candidate, Pick, Question, Reader, Reading

__all__ = ["Candidate", "Pick", "Question", "Reader", "Reading"]

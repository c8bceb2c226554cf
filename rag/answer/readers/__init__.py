"""Readers: which measured candidate sentences state the answer, best first, or none to
refuse (`base.Reader`). The heuristic reader is the picker's own
(`rag.answer.draft.extractive.HeuristicReader`); the LLM reader (`llm`) has the local
model read a learned shortlist and a learned decision choose (`learned`,
`reader_model.json`, fitted by `python -m eval.fit_reader`)."""

from rag.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "Candidate": "rag.answer.readers.base",
    "Pick": "rag.answer.readers.base",
    "Question": "rag.answer.readers.base",
    "Reader": "rag.answer.readers.base",
    "ReaderChoice": "rag.answer.readers.base",
    "Reading": "rag.answer.readers.base",
})

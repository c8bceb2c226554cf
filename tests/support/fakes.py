"""Fakes of what the engine talks to: a model cache with only the embedding model, and
the pieces of a fake OpenAI-compatible endpoint (its answer, its SSE chunks). (An
engine over fixed passages is `Engine.from_settings(settings,
retriever=StaticRetriever(passages))`: rag.answer ships that fake.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

from rag.text import sentence_spans


def embeddings_only_cache(tmp_path: Path) -> Path:
    """A model cache holding the exported embedding model (linked from the real cache,
    so it is not exported again) and none of the reader's models."""
    from rag.settings import Settings

    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    for onnx in Settings().model_cache.expanduser().glob("*.onnx"):
        if not (cache / onnx.name).exists():
            (cache / onnx.name).symlink_to(onnx)
    return cache


def first_sentence_of_passage_1(prompt: str) -> str:
    """The first sentence of passage [1] of the answerer's prompt
    (rag.answer.draft.llm.format_passages), so that a cut answer would be a supported one if
    the cut went unnoticed."""
    match = re.search(r"^\[1\] \(.*?\)\n(.+?)\n\n(?:\[2\] \(|Question: )", prompt, re.S | re.M)
    if not match:
        return "Iran and Azerbaijan fell out."
    text = match.group(1)
    start, end = sentence_spans(text)[0]
    return text[start:end]


def sse(content: str) -> bytes:
    chunk = {"id": "fake", "object": "chat.completion.chunk", "created": 0, "model": "fake",
             "choices": [{"index": 0, "finish_reason": None, "delta": {"content": content}}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()

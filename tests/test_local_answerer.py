"""Generated answers from the local model when no endpoint is set (`rag.local_answerer`),
on the tests' tiny SmolLM2 through llama.cpp in-process: what it writes streams out and
is checked like any model's; a deadline or a missing model falls back, saying why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import answering_from, embeddings_only_cache

from rag import llama_check
from rag.engine import PASSED_ON, UNSUPPORTED, Engine
from rag.local_answerer import LocalAnswerer
from rag.local_llm import LocalLLM
from rag.settings import Settings
from rag.types import REFUSAL, Passage

GGUF = llama_check.smollm2_gguf()
TEXT = ("Iran and Azerbaijan agreed on Monday to reopen the border crossing at Astara. "
        "The crossing had been closed for two years after the embassy attack in Tehran. "
        "Officials said trade through Astara would resume within a month.")
PASSAGES = [Passage(chunk_id="a1:v:0", article_id="a1", text=TEXT, start=0, end=len(TEXT),
                    score=1.0, title="Border reopens")]
QUESTION = "Why had the Astara border crossing been closed?"


def settings_in(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", collection="local", llm_model=None,
                    openai_base_url=None, openai_api_key=None,
                    model_cache=embeddings_only_cache(tmp_path), llm_max_tokens=48, **kw)


def engine_with(settings: Settings, answerer: Any = None) -> Engine:
    return answering_from(Engine(settings, llm_answerer=answerer), PASSAGES)


@pytest.fixture()
def model(smollm2_local: LocalLLM) -> LocalLLM:
    return smollm2_local


def test_the_local_model_writes_and_what_it_writes_is_checked(tmp_path: Path,
                                                              model: LocalLLM) -> None:
    settings = settings_in(tmp_path)
    answerer = LocalAnswerer(model, settings)
    stream = engine_with(settings, answerer).stream(QUESTION, mode="llm")
    deltas = list(stream)
    answer = stream.result
    assert len(deltas) > 1  # the model's own text went out as it was written
    assert answer.answer and answer.citations
    if answer.mode == "llm":  # its draft stood: every sentence it kept is supported
        assert answer.model == f"local:{GGUF.stem}"
        assert all(s.supported for s in answer.sentences)
    else:  # nothing it wrote was supported, or it refused: the verbatim answer, said so
        assert UNSUPPORTED in answer.notice or PASSED_ON in answer.notice
        assert answer.model == f"local:{GGUF.stem}"


class Refusing:
    """A local model that says the articles don't say, whatever it is asked."""

    path = Path("refuser.gguf")

    def chat_tokens(self, system: str, user: str) -> list[int]:
        return [1]

    def stream(self, tokens: list[int], max_tokens: int, stop: list[str]) -> Any:
        yield REFUSAL


def test_the_local_models_refusal_is_passed_on_to_the_extractive_answer(
        tmp_path: Path) -> None:
    """The 1.5B refused most answerable questions: its refusal is not the last word."""
    settings = settings_in(tmp_path)
    answer = engine_with(settings, LocalAnswerer(Refusing(), settings)).ask(QUESTION, mode="llm")
    assert answer.mode == "extractive" and "after the embassy attack" in answer.answer
    assert PASSED_ON in answer.notice and not answer.refused


def test_a_local_answer_past_its_deadline_falls_back(tmp_path: Path, model: LocalLLM) -> None:
    settings = settings_in(tmp_path, llm_timeout=0.001)
    answer = engine_with(settings, LocalAnswerer(model, settings)).ask(QUESTION, mode="llm")
    assert answer.mode == "extractive" and "after the embassy attack" in answer.answer
    assert "the local model did not finish within 0.001 s" in answer.notice


def test_no_endpoint_and_no_local_model_says_why_and_answers(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, local_model="qwen2.5-coder-0.5b")
    (settings.model_cache / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").write_bytes(b"bad")
    answer = engine_with(settings).ask(QUESTION, mode="llm")
    assert answer.mode == "extractive" and "after the embassy attack" in answer.answer
    assert answer.notice.startswith("no LLM endpoint configured and the local model is "
                                    "unavailable: the qwen2.5-coder-0.5b model file does not "
                                    "match its recorded checksum")
    assert "\n" not in answer.notice

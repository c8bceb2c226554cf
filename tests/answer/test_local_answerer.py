"""Generated answers from the local model when no endpoint is set (`rag.answer.draft.local`),
on the tests' tiny SmolLM2 through llama.cpp in-process: what it writes streams out and
is checked like any model's; a deadline or a missing model falls back, saying why."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support.fakes import embeddings_only_cache

from rag.answer.draft.llm import LLMError
from rag.answer.draft.local import LocalAnswerer
from rag.answer.engine import NO_MODEL, PASSED_ON, UNSUPPORTED, Engine
from rag.answer.request import Ask
from rag.answer.retrieve import StaticRetriever
from rag.local_model import build_check as llama_check
from rag.local_model import runtime as local_llm
from rag.local_model.runtime import DeadlinePassed, LocalLLM
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
    return Engine.from_settings(settings, retriever=StaticRetriever(PASSAGES),
                                llm_answerer=answerer)


@pytest.fixture()
def model(smollm2_local: LocalLLM) -> LocalLLM:
    return smollm2_local


def test_the_local_model_writes_and_what_it_writes_is_checked(tmp_path: Path,
                                                              model: LocalLLM) -> None:
    settings = settings_in(tmp_path)
    answerer = LocalAnswerer(model, settings)
    stream = engine_with(settings, answerer).stream(Ask(QUESTION, mode="llm"))
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

    def stream(self, tokens: list[int], max_tokens: int, stop: list[str],
               deadline: float | None = None) -> Any:
        yield REFUSAL


def test_the_local_models_refusal_is_passed_on_to_the_extractive_answer(
        tmp_path: Path) -> None:
    """The 1.5B refused most answerable questions: its refusal is not the last word."""
    settings = settings_in(tmp_path)
    answer = engine_with(settings, LocalAnswerer(Refusing(), settings)).ask(
        Ask(QUESTION, mode="llm"))
    assert answer.mode == "extractive" and "after the embassy attack" in answer.answer
    assert PASSED_ON in answer.notice and not answer.refused


def test_a_local_answer_past_its_deadline_falls_back(tmp_path: Path, model: LocalLLM) -> None:
    settings = settings_in(tmp_path, llm_timeout=0.001)
    answer = engine_with(settings, LocalAnswerer(model, settings)).ask(Ask(QUESTION, mode="llm"))
    assert answer.mode == "extractive" and "after the embassy attack" in answer.answer
    assert "the local model did not finish within 0.001 s" in answer.notice


def test_no_endpoint_and_no_local_model_tells_the_operator_not_the_asker(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """How to install the model is for whoever runs the server (the log, `setup_notes`,
    which the console and the editors' view show); the answer says only that no model
    wrote it."""
    settings = settings_in(tmp_path, local_model="qwen2.5-coder-0.5b")
    (settings.model_cache / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").write_bytes(b"bad")
    engine = engine_with(settings)
    with caplog.at_level("WARNING"):
        answer = engine.ask(Ask(QUESTION, mode="llm"))
    assert answer.mode == "extractive" and "after the embassy attack" in answer.answer
    assert answer.notice == NO_MODEL
    assert "checksum" not in answer.notice and "make" not in answer.notice
    assert "does not match its recorded checksum" in caplog.text
    notes = engine.setup_notes()
    assert any("Generated answers are unavailable" in n and "checksum" in n for n in notes)
    assert all("\n" not in n for n in notes)


# -- the deadline holds whatever the model is doing ----------------------------------

LONG = " ".join([TEXT] * 4)  # ~180 tokens: three steps of the prompt's reading


def test_the_deadline_stops_the_prompts_reading_between_steps(
        model: LocalLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock passes the deadline after the first step of a long prompt: the model
    stops there (before, the prompt was read to its end whatever the deadline), the
    cache holds what it read, and the same prompt afterwards writes what it writes
    from a fresh start."""
    tokens = model.chat_tokens("Answer briefly.", f"{LONG}\n\n{QUESTION}")
    assert len(tokens) > 2 * local_llm.STEP
    model.forget()
    fresh = "".join(model.stream(tokens, 8, []))
    model.forget()
    clock = iter([0.0, 0.0, 0.0, 100.0, 100.0, 100.0])
    monkeypatch.setattr(local_llm.time, "monotonic", lambda: next(clock, 100.0))
    with pytest.raises(DeadlinePassed, match="while it read the prompt"):
        "".join(model.stream(tokens, 8, [], deadline=50.0))
    monkeypatch.undo()
    assert 0 < len(model.cached) < len(tokens) and tokens[:len(model.cached)] == model.cached
    assert "".join(model.stream(tokens, 8, [])) == fresh
    assert model.lock.acquire(blocking=False)  # and the model is free
    model.lock.release()


def test_the_deadline_holds_while_another_answer_has_the_model(model: LocalLLM) -> None:
    tokens = model.chat_tokens("Answer briefly.", QUESTION)
    with model.lock:  # another answer is using the model
        stream = model.stream(tokens, 8, [], deadline=time.monotonic() + 0.05)
        with pytest.raises(DeadlinePassed, match="another answer had the model"):
            next(stream)


def test_a_deadline_passed_while_writing_falls_back_with_the_text_written_so_far(
        tmp_path: Path, model: LocalLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_in(tmp_path, llm_timeout=30)
    answerer = LocalAnswerer(model, settings)
    real = local_llm.time.monotonic
    calls = {"n": 0}

    def clock() -> float:  # the deadline passes once the first token is written
        calls["n"] += 1
        return real() + (1000.0 if calls["n"] > 12 else 0.0)

    draft = answerer.draft(QUESTION, PASSAGES)
    monkeypatch.setattr(local_llm.time, "monotonic", clock)
    with pytest.raises(LLMError, match="did not finish within 30 s"):
        for _ in draft:
            pass
    monkeypatch.undo()
    assert model.lock.acquire(blocking=False)
    model.lock.release()

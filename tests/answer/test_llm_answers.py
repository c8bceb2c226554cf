"""The LLM answering path against a real OpenAI-compatible server (see `llm_server`).

SmolLM2-135M writes poor answers and rarely cites: that is the point. Whatever it
writes, the answer that comes back must be checked: invented sentences flagged,
citations to passages it was not given dropped, every citation an exact article span,
and an unsupported answer replaced by the extractive one. The server being down or
refusing the key must give an extractive answer and a one-line notice, never a crash.

Tests marked slow talk to the server; the others use crafted model text (no server)
or a closed port.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support.servers import clean_env

from ingest.pipeline import ingest
from rag.answer.condense import rewrite
from rag.answer.draft.llm import LLMAnswerer, build_llm, parse_answer
from rag.answer.engine import Engine, verify_draft
from rag.answer.request import Ask
from rag.answer.verify import SUPPORT_THRESHOLD, SupportScorer
from rag.settings import Settings
from rag.store.articles import ArticleStore
from rag.text import sentence_spans
from rag.types import REFUSAL, Answer, Checked, Draft, Passage

PROJECT = Path(__file__).resolve().parents[2]
SEED = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "seed"
COLLECTION = "llm"
QUESTION = "Why did relations between Iran and Azerbaijan sour?"
INVENTED = "The treaty was signed by 45 countries in Paris in 1999."
UNKNOWN_PASSAGE = "Iran and Azerbaijan held talks in Baku."
HISTORY = [
    {"role": "user", "content": "What happened between Iran and Azerbaijan?"},
    {"role": "assistant", "content": "Iran's president met Azerbaijan's president in Baku."},
]
JSON_KEYS = {"question", "standalone_question", "answer", "refused", "mode", "model",
             "citations", "sentences", "retrieved", "timings_ms"}
MAX_TOKENS = 96  # two CPU cores: keep each generation to a few seconds

pytestmark = pytest.mark.skipif(not SEED.is_dir(), reason=f"shared corpora missing: {SEED}")


# -- fixtures and helpers ------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ArticleStore:
    settings = Settings(data_dir=tmp_path_factory.mktemp("llm_store"), collection=COLLECTION)
    store = ArticleStore(settings)
    report = ingest([str(SEED)], store, settings, progress=False)
    assert store.counts()[0] == 1, report
    return store


def llm_settings(store: ArticleStore, base_url: str, api_key: str = "unused",
                 model: str = "smollm2-135m") -> Settings:
    return store.settings.model_copy(update={
        "llm_model": model, "openai_base_url": base_url, "openai_api_key": api_key,
        "llm_timeout": 120.0, "llm_max_tokens": MAX_TOKENS, "answer_mode": "auto",
        "retrieval_mode": "hybrid", "top_k": 5,
    })


class RecordingAnswerer(LLMAnswerer):
    """The real answerer (real client, real server); it only keeps what went by."""

    def __init__(self, settings: Settings, llm: Any = None) -> None:
        super().__init__(settings, llm)
        self.calls: list[SimpleNamespace] = []
        self.condensed: list[str] = []

    def stream(self, question: str, passages: list[Passage]) -> Iterator[str]:
        call = SimpleNamespace(question=question, passages=passages, deltas=[])
        self.calls.append(call)
        for delta in super().stream(question, passages):
            call.deltas.append(delta)
            yield delta

    def condense(self, question: str, history: list[dict[str, Any]]) -> str:
        out = super().condense(question, history)
        self.condensed.append(out)
        return out


def run(engine: Engine, question: str, **kwargs: Any) -> tuple[list[str], Answer]:
    stream = engine.stream(Ask(question, **kwargs))
    deltas = list(stream)
    assert all(isinstance(e, str) for e in deltas)
    return deltas, stream.result


def check_model_text(text: str, passages: list[Passage], scorer: SupportScorer
                     ) -> tuple[Draft, list[Checked]]:
    """What the engine's draft and verify steps make of a model's text."""
    draft = parse_answer(text)
    return draft, verify_draft(draft, passages, scorer)


def assert_citations_sound(result: Answer, store: ArticleStore) -> None:
    """Every number cited is listed; every listed citation is an exact article span."""
    numbers = [c.n for c in result.citations]
    assert numbers == list(range(1, len(numbers) + 1))
    for sentence in result.sentences:
        assert set(sentence.citations) <= set(numbers), sentence
        if sentence.supported:
            assert sentence.citations and sentence.score >= SUPPORT_THRESHOLD, sentence
    for c in result.citations:
        article = store.get_article(c.article_id)
        assert article is not None, c
        assert c.quote and article.text[c.start:c.end] == c.quote, c
    for n in map(int, re.findall(r"\[(\d+)\]", result.answer)):
        assert n in numbers, (n, result.answer)
    assert len(numbers) <= len(result.retrieved)


def copied_sentence(passage: Passage) -> str:
    start, end = sentence_spans(passage.text)[0]
    return passage.text[start:end]


def crafted_answer(passages: list[Passage]) -> str:
    """One sentence copied from passage 1, one invented, one citing a passage not given."""
    return f"{copied_sentence(passages[0])} [1] {INVENTED} [1] {UNKNOWN_PASSAGE} [9]"


def cli(args: list[str], env_update: dict[str, str], cwd: Path, merged: bool = False
        ) -> subprocess.CompletedProcess:
    """`python -m rag ARGS`; `merged`: stderr into stdout, as a terminal shows them."""
    env = clean_env(**env_update)
    env["PYTHONPATH"] = str(PROJECT)
    return subprocess.run([sys.executable, "-m", "rag", *args], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, text=True, timeout=600,
                          stderr=subprocess.STDOUT if merged else subprocess.PIPE)


# -- crafted model text, no server ---------------------------------------------------


def test_crafted_answer_flags_invented_sentence_and_drops_unknown_passage(
        store: ArticleStore) -> None:
    engine = Engine.from_settings(llm_settings(store, "http://127.0.0.1:9/v1"), store=store)
    passages = engine.retriever("hybrid").retrieve(QUESTION, top_k=3)
    assert len(passages) == 3
    draft, checked = check_model_text(crafted_answer(passages), passages,
                                      SupportScorer(store.embed_model))
    assert not draft.refused
    assert [c.passages for c in draft.claims] == [[1], [1], [9]]
    copied, invented, unknown = checked
    assert copied.text == copied_sentence(passages[0])
    assert [s.passage for s in copied.spans] == [0] and copied.supported
    assert invented.text == INVENTED
    assert not invented.supported and invented.score < SUPPORT_THRESHOLD
    assert unknown.text == UNKNOWN_PASSAGE
    assert unknown.spans == [] and not unknown.supported


def test_crafted_answer_through_the_engine(store: ArticleStore,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The same text streamed by a stand-in for the model: flagged, renumbered, resolved."""
    engine = Engine.from_settings(llm_settings(store, "http://127.0.0.1:9/v1"), store=store)
    passages = engine.retriever("hybrid").retrieve(QUESTION, top_k=3)
    text = crafted_answer(passages)

    def fake_stream(self: LLMAnswerer, question: str, given: list[Passage]) -> Iterator[str]:
        assert [p.chunk_id for p in given] == [p.chunk_id for p in passages]
        yield from re.findall(r"\S+\s*", text)

    monkeypatch.setattr(LLMAnswerer, "stream", fake_stream)
    deltas, result = run(engine, QUESTION, mode="llm", top_k=3)
    assert "".join(deltas) == text
    assert result.mode == "llm" and not result.notice
    assert [(s.text, s.supported) for s in result.sentences] == [
        (copied_sentence(passages[0]), True), (INVENTED, False), (UNKNOWN_PASSAGE, False)]
    assert result.sentences[2].citations == []
    assert "[9]" not in result.answer
    assert_citations_sound(result, store)
    first = result.citations[result.sentences[0].citations[0] - 1]
    assert first.chunk_id == passages[0].chunk_id and first.quote == copied_sentence(passages[0])


def test_model_citing_a_later_passage_is_resolved_to_that_passage(
        store: ArticleStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Citation numbers are passage numbers exactly once: a sentence copied from passage 3
    and cited [3] is supported, quoted from passage 3, and renumbered [1]."""
    engine = Engine.from_settings(llm_settings(store, "http://127.0.0.1:9/v1"), store=store)
    passages = engine.retriever("hybrid").retrieve(QUESTION, top_k=3)
    third = copied_sentence(passages[2])

    def fake_stream(self: LLMAnswerer, question: str, given: list[Passage]) -> Iterator[str]:
        yield f"{third} [3]"

    monkeypatch.setattr(LLMAnswerer, "stream", fake_stream)
    _, result = run(engine, QUESTION, mode="llm", top_k=3)
    assert result.mode == "llm" and not result.notice
    [sentence] = result.sentences
    assert sentence.supported and sentence.citations == [1]
    [citation] = result.citations
    assert citation.chunk_id == passages[2].chunk_id and citation.quote == third
    assert_citations_sound(result, store)


def test_unsupported_model_answer_falls_back_to_extractive(
        store: ArticleStore, monkeypatch: pytest.MonkeyPatch) -> None:
    model_text = f"{INVENTED} [1] Everyone celebrated with fireworks on the beach. [2]"

    def fake_stream(self: LLMAnswerer, question: str, given: list[Passage]) -> Iterator[str]:
        yield from re.findall(r"\S+\s*", model_text)

    monkeypatch.setattr(LLMAnswerer, "stream", fake_stream)
    engine = Engine.from_settings(llm_settings(store, "http://127.0.0.1:9/v1"), store=store)
    deltas, result = run(engine, QUESTION, mode="llm")
    assert result.mode == "extractive"
    assert "model's answer was not supported by the articles" in result.notice
    assert "extractive answer instead" in result.notice
    assert not result.refused and result.answer and result.answer != REFUSAL
    assert INVENTED not in result.answer
    assert any(s.supported for s in result.sentences)
    assert_citations_sound(result, store)
    # The model's text went out as it was written; its replacement must go out too.
    assert "".join(deltas[:-1]) == model_text
    assert deltas[-1] == "\n\n" + result.answer


def test_model_refusal_is_a_refusal(store: ArticleStore,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LLMAnswerer, "stream", lambda self, q, p: iter(["The articles ",
                                                                         "don't say."]))
    engine = Engine.from_settings(llm_settings(store, "http://127.0.0.1:9/v1"), store=store)
    _, result = run(engine, "What is the capital of Peru?", mode="llm")
    assert result.mode == "llm" and result.refused
    assert result.answer == REFUSAL and result.citations == []


# -- server down (a closed port) -------------------------------------------------------


@pytest.mark.parametrize("history", [None, HISTORY], ids=["question", "follow-up"])
def test_server_down_gives_extractive_answer(store: ArticleStore, closed_llm_url: str,
                                             history: list[dict[str, str]] | None) -> None:
    engine = Engine.from_settings(llm_settings(store, closed_llm_url), store=store)
    started = time.monotonic()
    result = engine.ask(Ask(QUESTION, history=history, mode="llm"))
    assert time.monotonic() - started < 60
    assert result.mode == "extractive" and result.model is None
    assert "cannot reach the LLM endpoint" in result.notice
    assert closed_llm_url in result.notice
    assert not result.refused and result.citations
    assert_citations_sound(result, store)


def test_cli_server_down_prints_one_note(store: ArticleStore, closed_llm_url: str,
                                         tmp_path: Path) -> None:
    proc = cli(["ask", QUESTION, "--mode", "llm", "--data-dir", str(store.settings.data_dir),
                "--collection", COLLECTION],
               {"OPENAI_BASE_URL": closed_llm_url, "RAG_LLM_MODEL": "smollm2-135m"}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, proc.stderr
    assert "cannot reach the LLM endpoint" in notes[0]
    assert "Sources:" in proc.stdout and "[1]" in proc.stdout
    # on a terminal (both streams on one screen) the note has a line of its own, not the
    # end of the answer's ("… [4]note: …")
    shown = cli(["ask", QUESTION, "--mode", "llm", "--data-dir",
                 str(store.settings.data_dir), "--collection", COLLECTION],
                {"OPENAI_BASE_URL": closed_llm_url, "RAG_LLM_MODEL": "smollm2-135m"}, tmp_path,
                merged=True).stdout
    assert "note: " in shown
    assert all(line.startswith("note: ") for line in shown.splitlines() if "note: " in line)


# -- the real server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def iran_run(store: ArticleStore, llm_server: Any) -> SimpleNamespace:
    """The seed question through the real server, once: streamed deltas and the result."""
    settings = llm_settings(store, llm_server.base_url, llm_server.api_key, llm_server.model)
    answerer = RecordingAnswerer(settings)
    engine = Engine.from_settings(settings, store=store, llm_answerer=answerer)
    started = time.monotonic()
    deltas, result = run(engine, QUESTION, mode="llm")
    assert len(answerer.calls) == 1
    call = answerer.calls[0]
    return SimpleNamespace(engine=engine, deltas=deltas, result=result, call=call,
                           raw="".join(call.deltas), seconds=time.monotonic() - started)


@pytest.mark.slow
def test_real_server_streams_deltas(iran_run: SimpleNamespace, llm_server: Any) -> None:
    model_deltas = iran_run.call.deltas
    assert len(model_deltas) > 3, model_deltas
    assert iran_run.raw.strip()
    # What the engine streamed starts with exactly what the server sent, delta for delta.
    assert iran_run.deltas[:len(model_deltas)] == model_deltas
    rest = iran_run.deltas[len(model_deltas):]
    result = iran_run.result
    assert result.model == llm_server.model
    if result.mode == "llm":
        assert rest == []
    else:
        assert rest == ["\n\n" + result.answer]
    assert result.timings_ms["answer"] > 0


@pytest.mark.slow
def test_real_answer_citations_are_sound(iran_run: SimpleNamespace,
                                         store: ArticleStore) -> None:
    result = iran_run.result
    assert [r.chunk_id for r in result.retrieved] == [p.chunk_id for p in
                                                          iran_run.call.passages]
    assert not result.refused and result.answer
    assert_citations_sound(result, store)


@pytest.mark.slow
def test_real_model_sentences_are_checked(iran_run: SimpleNamespace,
                                          store: ArticleStore) -> None:
    """Whatever the model wrote: uncited or invented sentences are unsupported, and the
    result keeps its answer only when some sentence of it is supported."""
    passages = iran_run.call.passages
    draft, checked = check_model_text(iran_run.raw, passages, SupportScorer(store.embed_model))
    result = iran_run.result
    if draft.refused:
        assert result.mode == "llm" and result.refused
        return
    if not any(c.supported for c in checked):
        assert result.mode == "extractive"
        assert "not supported by the articles" in result.notice
        return
    for claim in checked:
        assert all(0 <= s.passage < len(passages) for s in claim.spans), claim
        if not claim.spans:
            assert not claim.supported, claim
    assert result.mode == "llm"
    assert [(s.text, s.supported) for s in result.sentences] == [
        (s.text, s.supported) for s in checked]


@pytest.mark.slow
def test_real_server_forced_mixed_answer(store: ArticleStore, llm_server: Any) -> None:
    """The real model, constrained by a grammar to write the crafted answer: streamed over
    the wire, then flagged and cleaned like any answer."""
    settings = llm_settings(store, llm_server.base_url, llm_server.api_key, llm_server.model)
    plain = Engine.from_settings(settings, store=store)
    passages = plain.retriever("hybrid").retrieve(QUESTION, top_k=5)
    text = crafted_answer(passages)
    llm = build_llm(settings)
    grammar = f"root ::= {json.dumps(text, ensure_ascii=False)}"  # GBNF: this text, exactly
    llm.additional_kwargs = {"extra_body": {"grammar": grammar}}
    answerer = RecordingAnswerer(settings, llm)
    deltas, result = run(Engine.from_settings(settings, store=store, llm_answerer=answerer),
                         QUESTION, mode="llm")
    assert [p.chunk_id for p in answerer.calls[0].passages] == [p.chunk_id for p in passages]
    assert "".join(deltas) == text and len(deltas) > 3
    assert result.mode == "llm" and result.model == llm_server.model
    assert [(s.text, s.supported) for s in result.sentences] == [
        (copied_sentence(passages[0]), True), (INVENTED, False), (UNKNOWN_PASSAGE, False)]
    assert result.sentences[2].citations == []
    assert "[9]" not in result.answer
    assert_citations_sound(result, store)


@pytest.mark.slow
def test_wrong_api_key_gives_extractive_answer(store: ArticleStore, llm_server: Any) -> None:
    settings = llm_settings(store, llm_server.base_url, "wrong-key", llm_server.model)
    result = Engine.from_settings(settings, store=store).ask(Ask(QUESTION, mode="llm"))
    assert result.mode == "extractive" and result.model is None
    assert "401" in result.notice and "API key" in result.notice
    assert not result.refused and result.citations
    assert_citations_sound(result, store)


@pytest.mark.slow
def test_follow_up_is_condensed_by_the_model(store: ArticleStore, llm_server: Any) -> None:
    settings = llm_settings(store, llm_server.base_url, llm_server.api_key, llm_server.model)
    answerer = RecordingAnswerer(settings)
    result = Engine.from_settings(settings, store=store, llm_answerer=answerer).ask(
        Ask("and why?", history=HISTORY, mode="llm"))
    assert len(answerer.condensed) == 1  # the model was asked to rewrite the follow-up
    standalone = result.standalone_question
    assert standalone.strip() and standalone != "and why?"
    # The model's rewrite is used only when it keeps the conversation's subject.
    assert re.search(r"Iran|Azerbaijan", standalone), standalone
    assert standalone in (answerer.condensed[0], rewrite("and why?", HISTORY))
    assert answerer.calls and answerer.calls[0].question == standalone
    assert result.retrieved and not result.refused


@pytest.mark.slow
def test_cli_json_with_real_server(store: ArticleStore, llm_server: Any,
                                   tmp_path: Path) -> None:
    proc = cli(["ask", QUESTION, "--json", "--mode", "llm",
                "--data-dir", str(store.settings.data_dir), "--collection", COLLECTION],
               {"OPENAI_BASE_URL": llm_server.base_url, "OPENAI_API_KEY": llm_server.api_key,
                "RAG_LLM_MODEL": llm_server.model, "RAG_LLM_MAX_TOKENS": str(MAX_TOKENS),
                "RAG_LLM_TIMEOUT": "120"}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    data = json.loads(proc.stdout)
    assert isinstance(data, dict) and data.keys() >= JSON_KEYS
    assert data["question"] == QUESTION and data["answer"]
    assert data["model"] == llm_server.model
    assert data["mode"] in ("llm", "extractive")
    if data["mode"] == "extractive":
        assert "not supported by the articles" in data["notice"]
    for c in data["citations"]:
        assert store.get_article(c["article_id"]).text[c["start"]:c["end"]] == c["quote"]
    cited = {n for s in data["sentences"] for n in s["citations"]}
    assert cited <= {c["n"] for c in data["citations"]}


@pytest.mark.slow
def test_real_server_answer_stops_at_the_wall_clock_deadline(store: ArticleStore,
                                                             llm_server: Any) -> None:
    """RAG_LLM_TIMEOUT bounds the whole call, not each read: a deadline shorter than the
    model's answer ends it with a note and the extractive answer, and the server, whose
    connection was cut, is free for the next question."""
    settings = llm_settings(store, llm_server.base_url, llm_server.api_key, llm_server.model)
    short = settings.model_copy(update={"llm_timeout": 0.5, "llm_max_tokens": 400})
    cut = Engine.from_settings(short, store=store).ask(Ask(QUESTION, mode="llm"))
    assert "did not finish within 0.5 s" in cut.notice
    assert cut.mode == "extractive" and cut.citations
    assert_citations_sound(cut, store)
    after = Engine.from_settings(settings, store=store).ask(Ask(QUESTION, mode="llm"))
    assert after.mode in ("llm", "extractive") and "did not finish" not in after.notice


def test_a_model_that_ignores_max_tokens_is_cut_at_the_length_cap(store: ArticleStore) -> None:
    """A server may ignore max_tokens: the answerer stops reading at its own cap and
    closes the model's stream."""
    closed: list[bool] = []

    class Endless:
        def stream_chat(self, messages: list[Any]) -> Iterator[SimpleNamespace]:
            try:
                for _ in range(10_000):  # 50,000 characters, far past any cap
                    yield SimpleNamespace(delta="word ")
            finally:
                closed.append(True)

    settings = llm_settings(store, "http://127.0.0.1:9/v1").model_copy(
        update={"llm_max_tokens": 16})
    answerer = LLMAnswerer(settings, llm=Endless())  # type: ignore[arg-type]
    text = "".join(answerer.stream("why?", []))
    assert len(text) == answerer.max_chars == 16 * 8
    deadline = time.monotonic() + 10
    while not closed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert closed  # the worker closed the stream after the reader stopped

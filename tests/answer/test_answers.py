"""Grounded answers without an LLM: hybrid retrieval, extractive answers, verified
citations, follow-ups and filters, over the seed article and a slice of BBC news."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from ingest.pipeline import ingest
from rag.answer.condense import is_follow_up, rewrite
from rag.answer.draft.extractive import question_type
from rag.answer.engine import Engine
from rag.answer.request import Ask
from rag.answer.retrieve import Filters, Retriever, diversify
from rag.answer.verify import SupportScorer, number_citations, split_cited_sentences, verify
from rag.settings import Settings
from rag.store.articles import ArticleStore
from rag.text import sentence_spans
from rag.types import Checked, Passage, Span

ROOT = Path(__file__).resolve().parents[2]
CORPORA = ROOT.parent / "shared" / "corpora"
SEED_TITLE = "Iranian president Pezeshkian meets Azerbaijani leader Aliyev to improve ties"
# The articles questions below are about, plus every 25th BBC file as distractors.
BBC_TARGETS = ["business/002.txt", "business/010.txt", "entertainment/005.txt",
               "politics/003.txt", "sport/199.txt", "tech/002.txt", "tech/010.txt",
               "sport/010.txt"]


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    data = tmp_path_factory.mktemp("answers")
    settings = Settings(data_dir=data, collection="answers")
    store = ArticleStore(settings)
    bbc = CORPORA / "bbc"
    files = sorted(p for p in bbc.rglob("*.txt") if p.name != "README.TXT")[::25]
    files += [bbc / t for t in BBC_TARGETS]
    report = ingest([str(CORPORA / "seed"), *map(str, files)], store, settings, progress=False)
    assert not report.failed
    engine = Engine.from_settings(settings, store=store)
    seed_id = next(a.id for a in store.list_articles() if a.title == SEED_TITLE)
    return SimpleNamespace(settings=settings, store=store, engine=engine, seed_id=seed_id,
                           data=data)


def _title_of(lib: SimpleNamespace, article_id: str) -> str:
    return lib.store.get_article(article_id).title


def _check_citations(lib: SimpleNamespace, result) -> None:  # noqa: ANN001
    numbers = {c.n for c in result.citations}
    assert [c.n for c in result.citations] == list(range(1, len(numbers) + 1))
    for sentence in result.sentences:
        assert set(sentence.citations) <= numbers
    for c in result.citations:
        article = lib.store.get_article(c.article_id)
        assert article.text[c.start:c.end] == c.quote, "citation span must quote the article"
        assert c.quote and c.title == article.title and c.chunk_id.startswith(c.article_id)
        assert c.path or c.url


# -- the seed's questions ------------------------------------------------------


def test_why_did_relations_sour_over_the_seed(lib: SimpleNamespace) -> None:
    result = lib.engine.ask(Ask("why did relations sour?", mode="extractive",
                                filters=Filters(article_ids=[lib.seed_id])))
    assert not result.refused and result.mode == "extractive"
    assert "Israel" in result.answer
    assert "January 2023 attack" in result.answer and "embassy in Tehran" in result.answer
    assert 2 <= len(result.sentences) <= 5
    assert all(s.supported and s.citations for s in result.sentences)
    _check_citations(lib, result)


def test_why_did_relations_sour_over_the_whole_library(lib: SimpleNamespace) -> None:
    """No subject, several stories: asked back, with the Iran-Azerbaijan story among the
    choices; picking it answers with the causes (or, with one story ahead, the answer)."""
    result = lib.engine.ask(Ask("why did relations sour?"))
    assert not result.refused
    if result.clarify:
        [choice] = [c for c in result.clarify if c.article_id == lib.seed_id]
        result = lib.engine.ask(Ask(choice.question))
        assert not result.clarify and not result.refused
    assert "Israel" in result.answer and "embassy" in result.answer
    assert {c.article_id for c in result.citations} == {lib.seed_id}
    _check_citations(lib, result)


@pytest.mark.parametrize(
    ("question", "facts", "title"),
    [
        ("What is Tehran's position on the planned Zangezur route?", ["opposed"], SEED_TITLE),
        ("How many ethnic Azeris live in Iran?", ["10 million"], SEED_TITLE),
        ("Why did the football club get rid of Adrian Mutu?", ["drugs test"],
         "Chelsea sack Mutu"),
        ("How many internet cafes did the Chinese authorities shut?", ["12,575"],
         "China net cafe culture crackdown"),
        ("How much money did the US government want from cigarette makers?", ["$280bn"],
         "Court rejects $280bn tobacco case"),
        ("What did Greenspan's speech do to the US currency?", ["dollar"],
         "Dollar gains on Greenspan speech"),
        pytest.param(
            "Which feature of the new Google toolbar worries users?", ["AutoLink"],
            "Google's toolbar sparks concern",
            marks=pytest.mark.xfail(strict=True, reason="known gap: the extractive scorer "
                                    "prefers sentences about the feature to the one naming it"),
        ),
    ],
)
def test_answers_contain_the_fact_and_cite_the_right_article(
    lib: SimpleNamespace, question: str, facts: list[str], title: str
) -> None:
    result = lib.engine.ask(Ask(question))
    assert not result.refused, question
    for fact in facts:
        assert fact.lower() in result.answer.lower(), (question, result.answer)
    assert any(_title_of(lib, c.article_id) == title for c in result.citations)
    assert result.sentences and all(s.supported for s in result.sentences)
    _check_citations(lib, result)


@pytest.mark.parametrize(
    "question",
    [
        "Who won the 2022 football World Cup?",
        "What is the recipe for a chocolate cake?",
        "What is the capital city of Australia?",
        "How do I reset my router password?",
    ],
)
def test_out_of_corpus_questions_are_refused(lib: SimpleNamespace, question: str) -> None:
    result = lib.engine.ask(Ask(question))
    assert result.refused, (question, result.answer)
    assert result.citations == [] and "don't say" in result.answer


# -- retrieval -------------------------------------------------------------------


def test_hybrid_dense_and_bm25_all_find_the_seed(lib: SimpleNamespace) -> None:
    question = "embassy attack in Tehran and the expulsion of diplomats"
    for mode in ("hybrid", "dense", "bm25"):
        passages = Retriever(lib.store, mode, lib.engine.keyword).retrieve(question, top_k=5)
        assert passages and passages[0].article_id == lib.seed_id, mode


def test_keyword_index_is_persisted_and_not_rebuilt_per_query(lib: SimpleNamespace) -> None:
    from rag.store.keyword import KeywordIndex

    index = KeywordIndex(lib.store)  # a new process would start like this
    retriever = Retriever(lib.store, "bm25", index)
    for q in ("dollar euro", "tobacco court", "Mutu drugs"):
        assert retriever.retrieve(q, top_k=3)
    assert index.builds == 0, "the table ingest kept must be used as it is, not rebuilt"
    assert index.path.is_file() and index.is_current()


def test_keyword_index_follows_ingest_and_remove(tmp_path: Path) -> None:
    from rag.store.keyword import KeywordIndex

    settings = Settings(data_dir=tmp_path, collection="kwd")
    store = ArticleStore(settings)
    one = tmp_path / "one.txt"
    one.write_text("Zebra crossing rules\n\nA new zebra crossing law takes effect in Ruritania.")
    two = tmp_path / "two.txt"
    two.write_text("Quokka census\n\nRangers counted twelve thousand quokkas on the island.")
    ingest([str(one)], store, settings, progress=False)
    index = KeywordIndex(store)
    retriever = Retriever(store, "bm25", index)
    assert retriever.retrieve("quokka census", top_k=3) == []
    ingest([str(two)], store, settings, progress=False)
    hits = retriever.retrieve("quokka census", top_k=3)
    assert hits and hits[0].title == "Quokka census"
    store.remove_article(hits[0].article_id)
    assert retriever.retrieve("quokka census", top_k=3) == []


def test_ingest_keeps_the_keyword_index_and_a_reader_never_rebuilds(tmp_path: Path) -> None:
    """A write changes the keyword table by its own chunks: the next reader finds it in
    step and builds nothing; a store whose table is gone gets it back once, whole."""
    from rag.store.health import check_store
    from rag.store.keyword import KeywordIndex

    settings = Settings(data_dir=tmp_path, collection="lazy")
    store = ArticleStore(settings)
    files = {}
    for name, text in (("zebra", "Zebra crossing rules\n\nA new zebra crossing law takes "
                        "effect in Ruritania on Monday."),
                       ("quokka", "Quokka census\n\nRangers counted twelve thousand quokkas "
                        "on the island.")):
        files[name] = tmp_path / f"{name}.txt"
        files[name].write_text(text)
    ingest([str(files["zebra"]), str(files["quokka"])], store, settings, progress=False)
    index = KeywordIndex(store)
    assert index.is_current(), "ingest left the keyword index behind"
    assert check_store(store).ok
    hits = Retriever(store, "bm25", index).retrieve("quokka census", top_k=3)
    assert [h.title for h in hits] == ["Quokka census"] and index.builds == 0

    store.keywords.close()
    for p in index.path.parent.glob(index.path.name + "*"):
        p.unlink()  # a store made before the table existed
    fresh = KeywordIndex(store)
    assert not fresh.is_current()
    hits = Retriever(store, "bm25", fresh).retrieve("zebra crossing", top_k=3)
    assert [h.title for h in hits] == ["Zebra crossing rules"] and fresh.builds == 1
    assert fresh.is_current() and store.keywords.count() == store.chunks.count()


def test_filters_by_article_outlet_and_date(lib: SimpleNamespace, tmp_path: Path) -> None:
    retriever = Retriever(lib.store, "hybrid", lib.engine.keyword)
    question = "relations between countries"
    only_seed = retriever.retrieve(question, 5, Filters(article_ids=[lib.seed_id]))
    assert only_seed and {p.article_id for p in only_seed} == {lib.seed_id}
    recent = retriever.retrieve(question, 5, Filters(date_from=date(2025, 1, 1)))
    assert recent and {p.article_id for p in recent} == {lib.seed_id}  # BBC has no dates
    old = retriever.retrieve(question, 5, Filters(date_to=date(2024, 12, 31)))
    assert old == []
    none = retriever.retrieve(question, 5, Filters(outlets=["No Such Outlet"]))
    assert none == []
    # an outlet filter against a real outlet
    src = tmp_path / "wire.jsonl"
    src.write_text(json.dumps({"text": "Ruritania's parliament approved a new budget for "
                               "rail lines on Tuesday after a long debate.",
                               "title": "Ruritania passes rail budget", "source": "Wire"}))
    ingest([str(src)], lib.store, lib.settings, progress=False)
    wire = retriever.retrieve("rail budget approved", 5, Filters(outlets=["Wire"]))
    assert wire and {p.outlet for p in wire} == {"Wire"}


def test_an_article_left_out_of_the_search_is_not_found_by_any_retriever(
        lib: SimpleNamespace) -> None:
    """`Filters.exclude_ids`: the hard unanswerable case (the question's own article left
    out, its topic's neighbours still in) for dense, keyword and fused retrieval."""
    question = "Why did relations between Iran and Azerbaijan sour?"
    for mode in ("dense", "bm25", "hybrid"):
        retriever = Retriever(lib.store, mode, lib.engine.keyword)
        assert lib.seed_id in {p.article_id for p in retriever.retrieve(question, 8)}
        left = retriever.retrieve(question, 8, Filters(exclude_ids=[lib.seed_id]))
        assert left and lib.seed_id not in {p.article_id for p in left}, mode
    answer = lib.engine.ask(Ask(question, filters=Filters(exclude_ids=[lib.seed_id])))
    assert lib.seed_id not in {c.article_id for c in answer.citations}


def test_left_out_questions_are_unanswerable_copies_without_their_gold_article(
        lib: SimpleNamespace) -> None:
    from eval.qa import QAItem
    from eval.runner import left_out

    items = [QAItem(id="q1", question="Why did relations sour?", answers=["Israel"],
                    source="seed/iran-azerbaijan-baku-meeting.txt", type="why"),
             QAItem(id="q2", question="Who won?", type="unanswerable")]
    copies, filters = left_out(items, lib.store, CORPORA)
    assert [c.id for c in copies] == ["q1~left-out"]
    assert not copies[0].answerable and copies[0].type == "unanswerable"
    assert copies[0].question == items[0].question and not copies[0].answers
    assert lib.seed_id in filters["q1~left-out"].exclude_ids


def test_filter_where_clause() -> None:
    f = Filters(article_ids=["a"], outlets=["BBC"], date_from=date(2020, 1, 2))
    assert f.where() == {"$and": [{"article_id": {"$in": ["a"]}}, {"outlet": {"$in": ["BBC"]}},
                                  {"published_int": {"$gte": 20200102}}]}
    assert Filters().where() is None and not Filters()
    out = Filters(exclude_ids=["b"])
    assert out and out.where() == {"article_id": {"$nin": ["b"]}}
    assert out.match({"article_id": "a"}) and not out.match({"article_id": "b"})
    assert f.match({"article_id": "a", "outlet": "BBC", "published_int": 20210101})
    assert not f.match({"article_id": "a", "outlet": "BBC"})  # undated fails a date filter


def _p(article: str, score: float) -> Passage:
    return Passage(chunk_id=f"{article}:{score}", article_id=article, text="x", start=0, end=1,
                   score=score)


def test_diversify_caps_an_article_unless_others_are_much_weaker() -> None:
    close = [_p("a", 1.0), _p("a", 0.99), _p("a", 0.98), _p("b", 0.97), _p("c", 0.96)]
    assert [p.article_id for p in diversify(close, 4, 2)] == ["a", "a", "b", "c"]
    far = [_p("a", 1.0), _p("a", 0.99), _p("a", 0.98), _p("b", 0.2)]
    assert [p.article_id for p in diversify(far, 3, 2)] == ["a", "a", "a"]


# -- citations -------------------------------------------------------------------


def test_verify_drops_bad_numbers_and_flags_made_up_claims(lib: SimpleNamespace) -> None:
    passages = Retriever(lib.store, "hybrid", lib.engine.keyword).retrieve(
        "Zangezur corridor Armenia", 3, Filters(article_ids=[lib.seed_id]))
    true_sentence = next(passages[0].text[a:b] for a, b in sentence_spans(passages[0].text)
                         if "Zangezur" in passages[0].text[a:b] and len(passages[0].text[a:b]) > 60)
    answer = (f"{true_sentence} [1] The corridor was financed by 45 countries at a summit in "
              "Paris in 1999. [1] Iran praised the weather in Baku. [9]")
    claims = split_cited_sentences(answer)
    assert [c.passages for c in claims] == [[1], [1], [9]]
    checked = verify(claims, passages, SupportScorer(lib.store.embed_model))
    assert checked[0].supported and checked[0].score > 0.8
    assert not checked[1].supported, "invented figures must not pass"
    assert checked[2].spans == [] and not checked[2].supported
    sentences, citations = number_citations(checked, passages)
    assert {c.chunk_id for c in citations} == {passages[0].chunk_id}
    assert [s.citations for s in sentences] == [[1], [len(citations)], []]
    assert claims[2].passages == [9], "verifying makes new objects; the claims stay as written"


def test_citations_are_numbered_once_in_order_of_first_use() -> None:
    passages = [Passage(chunk_id=f"c{i}", article_id=f"a{i}", text="One. Two. Three.",
                        start=100, end=116, score=1.0, title=f"T{i}") for i in range(3)]
    checked = [Checked(text="x", spans=[Span(passage=2, start=105, end=109)], supported=True),
               Checked(text="y", spans=[Span(passage=0, start=100, end=104),
                                        Span(passage=2, start=105, end=109)]),
               Checked(text="z")]
    sentences, citations = number_citations(checked, passages)
    assert [s.citations for s in sentences] == [[1], [2, 1], []]
    assert [(c.n, c.chunk_id, c.quote) for c in citations] == [(1, "c2", "Two."),
                                                               (2, "c0", "One.")]
    assert [s.supported for s in sentences] == [True, False, False]


def test_split_cited_sentences_handles_marker_placement() -> None:
    sentences = split_cited_sentences(
        "Prices rose sharply [1]. Analysts blamed the weather.[2][3] Nobody knows why.")
    assert [(s.text, s.passages) for s in sentences] == [
        ("Prices rose sharply.", [1]),
        ("Analysts blamed the weather.", [2, 3]),
        ("Nobody knows why.", []),
    ]


# -- conversation -----------------------------------------------------------------


def test_follow_up_rewrites_carry_the_subject() -> None:
    history = [{"role": "user", "content": "Why did relations between Iran and Azerbaijan "
                                           "sour?"},
               {"role": "assistant", "content": "Because of ... [1]"}]
    assert is_follow_up("and what did Iran say about the corridor?")
    out = rewrite("and what did Iran say about the corridor?", history)
    assert "corridor" in out and "Azerbaijan" in out
    why = rewrite("why?", history)
    assert "Azerbaijan" in why and "sour" in why
    standalone = "What did the Chinese government do to internet cafes?"
    assert rewrite(standalone, history) == standalone
    assert rewrite("why?", None) == "why?"


def test_follow_up_retrieves_the_earlier_subject(lib: SimpleNamespace) -> None:
    history = [{"role": "user", "content": "What happened between Iran and Azerbaijan?"},
               {"role": "assistant", "content": "..."}]
    result = lib.engine.ask(Ask("and what about the corridor?", history=history))
    assert "Azerbaijan" in result.standalone_question
    assert "Zangezur" in result.answer
    assert result.citations[0].article_id == lib.seed_id


def test_question_types() -> None:
    assert question_type("Why did relations sour?") == "why"
    assert question_type("When did the embassy reopen?") == "when"
    assert question_type("How many cafes were closed?") == "numeric"
    assert question_type("Who sacked Mutu?") == "who"
    assert question_type("What did Iran say?") == "what"


# -- interfaces -------------------------------------------------------------------


def test_stream_yields_text_then_the_result(lib: SimpleNamespace) -> None:
    stream = lib.engine.stream(Ask("How many internet cafes were closed in China?"))
    texts = list(stream)
    assert texts and all(isinstance(t, str) for t in texts)
    assert "".join(texts) == stream.result.answer and stream.result.citations


def test_empty_question_and_bad_mode_are_clear_errors(lib: SimpleNamespace) -> None:
    with pytest.raises(ValueError, match="empty"):
        lib.engine.ask(Ask("   "))
    with pytest.raises(ValueError, match="answer mode"):
        lib.engine.ask(Ask("anything", mode="magic"))


def _cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    for key in ("RAG_LLM_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def test_cli_ask_json_has_every_field(lib: SimpleNamespace) -> None:
    proc = _cli("ask", "why did relations sour?", "--json", "--data-dir", str(lib.data),
                "--collection", "answers", "--article", lib.seed_id)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) >= {"question", "standalone_question", "answer", "refused", "mode", "model",
                        "citations", "sentences", "retrieved", "timings_ms"}
    assert out["mode"] == "extractive" and out["model"] is None and not out["refused"]
    assert out["reader"] == "heuristic" and out["reader_note"] == "RAG_READER=heuristic"
    assert set(out["citations"][0]) >= {"n", "article_id", "title", "url", "file_path", "published",
                                        "chunk_id", "start", "end", "quote"}
    assert set(out["sentences"][0]) >= {"text", "citations", "supported", "score"}
    assert set(out["retrieved"][0]) >= {"chunk_id", "article_id", "file_path", "url", "score"}
    assert {"retrieve", "answer", "total"} <= set(out["timings_ms"])
    assert "Israel" in out["answer"]


def test_cli_text_output_and_empty_collection(lib: SimpleNamespace, tmp_path: Path) -> None:
    proc = _cli("ask", "How many internet cafes were closed in China?", "--data-dir",
                str(lib.data), "--collection", "answers")
    assert proc.returncode == 0, proc.stderr
    assert "12,575" in proc.stdout and "Sources:" in proc.stdout and "[1]" in proc.stdout
    empty = _cli("ask", "anything?", "--data-dir", str(tmp_path))
    assert empty.returncode == 1
    assert "python -m ingest" in empty.stderr and "Traceback" not in empty.stderr


def test_a_small_library_searches_without_warnings(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Fewer chunks than top_k: BM25 asks for what there is, so llama-index does not warn
    on every question (it did, twice a question, on a new user's first articles)."""
    from rag.store.keyword import KeywordIndex

    settings = Settings(data_dir=tmp_path, collection="tiny")
    store = ArticleStore(settings)
    one = tmp_path / "one.txt"
    one.write_text("Quokka census\n\nRangers counted twelve thousand quokkas on the island.")
    ingest([str(one)], store, settings, progress=False)
    caplog.set_level(logging.WARNING)
    hits = Retriever(store, "hybrid", KeywordIndex.of(store)).retrieve("quokka census", 8)
    assert hits and hits[0].title == "Quokka census"
    assert not [r for r in caplog.records if "requires k" in r.getMessage()]

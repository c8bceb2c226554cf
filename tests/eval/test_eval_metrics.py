"""Metric definitions against hand-worked examples, and the dataset tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval import metrics as m
from eval.qa import DatasetError, QAItem, generate_cloze, load
from eval.report import compare, table
from eval.scoring import Gold, score_record

CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"


def test_retrieval_metrics_hand_worked() -> None:
    ranked = [False, True, False, True]
    assert m.hit_at(ranked, 1) == 0.0 and m.hit_at(ranked, 2) == 1.0
    assert m.reciprocal_rank(ranked) == pytest.approx(0.5)
    assert m.reciprocal_rank([False, False, True]) == pytest.approx(1 / 3)
    assert m.reciprocal_rank([False, False]) == 0.0
    # DCG = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068; IDCG (2 relevant) = 1 + 0.63093
    assert m.ndcg_at(ranked, 10, n_relevant=2) == pytest.approx(1.06161 / 1.63093, abs=1e-4)
    # only one relevant exists and it is at rank 2: 0.63093 / 1
    assert m.ndcg_at([False, True], 10, n_relevant=1) == pytest.approx(0.63093, abs=1e-4)
    assert m.ndcg_at([True], 10, n_relevant=1) == 1.0
    assert m.ndcg_at([False] * 3, 10, n_relevant=1) == 0.0
    assert m.ndcg_at([False] * 10 + [True], 10, n_relevant=1) == 0.0  # past the cut-off


def test_answer_metrics_hand_worked() -> None:
    pred = "The dollar rose to $1.29 [1]."
    assert m.normalize_answer(pred) == "dollar rose to $129"
    assert m.token_f1(pred, ["dollar rose"]) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert m.token_f1(pred, ["euro fell"]) == 0.0
    assert m.contains_answer("Profits jumped to $1.13bn.", ["$1.13bn"]) == 1.0
    assert m.contains_answer("Profits jumped.", ["$1.13bn", "76%"]) == 0.0
    assert m.keyword_recall("Israel and the embassy", ["Israel", "embassy", "Baku"]) == 2 / 3


def test_percentile_interpolates() -> None:
    assert m.percentile([4, 1, 3, 2], 50) == 2.5
    assert m.percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert m.percentile([], 50) == 0.0


def _result(**kw: object) -> dict:
    base = {"answer": "", "refused": False, "retrieved": [], "citations": [], "sentences": [],
            "timings_ms": {"retrieve": 10, "answer": 20, "total": 30}}
    return {**base, **kw}


def test_score_record_article_and_passage_levels() -> None:
    item = QAItem(id="q", question="?", answers=["Zangezur"], keywords=["Armenia"],
                  source="x.txt", evidence="e", type="factoid")
    gold = Gold({"A"}, {"A": (100, 150)}, n_relevant_passages=1)
    retrieved = [{"article_id": "B", "start": 0, "end": 90},
                 {"article_id": "A", "start": 0, "end": 90},     # gold article, not evidence
                 {"article_id": "A", "start": 90, "end": 200}]  # holds the evidence
    result = _result(answer="Iran opposes the Zangezur corridor [1].", retrieved=retrieved,
                     citations=[{"article_id": "A", "quote": "..."},
                                {"article_id": "B", "quote": "..."}],
                     sentences=[{"supported": True}, {"supported": False}])
    s = score_record(item, result, gold)
    assert s["article_hit@1"] == 0 and s["article_mrr"] == 0.5
    assert s["passage_mrr"] == pytest.approx(1 / 3)
    assert s["passage_ndcg@10"] == pytest.approx(0.5)  # 1/log2(4) over an ideal of 1
    assert s["answer_contains"] == 1 and s["keyword_recall"] == 0
    assert s["citation_precision"] == 0.5
    assert s["support_rate"] == 0.5 and s["unsupported_rate"] == 0.5
    assert s["false_refusal_rate"] == 0
    unanswerable = QAItem(id="u", question="?", source=None, type="unanswerable")
    assert score_record(unanswerable, _result(refused=True), None) == {
        "_t_retrieve": 10, "_t_answer": 20, "_t_total": 30, "refusal_rate": 1.0}


def test_a_question_back_is_scored_on_the_gold_story_and_on_what_picking_gives() -> None:
    item = QAItem(id="v", question="Who won?", source="x.txt", evidence="e", type="vague")
    gold = Gold({"A"}, {}, n_relevant_passages=1)
    asked = _result(clarify=[{"article_id": "A"}, {"article_id": "B"}, {"article_id": "C"}])
    picked = [{"article_id": "A", "refused": False, "cited": ["A"]},
              {"article_id": "B", "refused": True, "cited": []},  # "The articles don't say"
              {"article_id": "C", "refused": False, "cited": ["D"]}]  # not from its story
    s = score_record(item, asked, gold, picked)
    assert s["vague_ok"] == 1 and s["clarify_rate"] == 1
    assert s["choice_answers"] == pytest.approx(1 / 3)
    assert "choice_answers" not in score_record(item, asked, gold)  # a run without picks


def test_compare_says_better_and_worse() -> None:
    old = {"configs": {"hybrid": {"article_mrr": 0.5, "unsupported_rate": 0.2,
                                  "latency_total_p50_ms": 100.0}}}
    new = {"configs": {"hybrid": {"article_mrr": 0.6, "unsupported_rate": 0.3,
                                  "latency_total_p50_ms": 101.0}}}
    out = compare(old, new)
    assert "1 better, 1 worse, 1 same" in out
    assert out.index("article_mrr") < out.index("worse:") < out.index("unsupported_rate")
    assert "| article_mrr | 0.600 |" in table(new["configs"])


def test_dataset_load_checks_lines(tmp_path: Path) -> None:
    good = {"id": "a", "question": "q?", "answers": [], "keywords": [], "source": None,
            "evidence": None, "type": "unanswerable"}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(DatasetError, match=r"d.jsonl:2: duplicate id"):
        load(path)
    path.write_text(json.dumps({**good, "type": "poem"}) + "\n")
    with pytest.raises(DatasetError, match="unknown type"):
        load(path)
    path.write_text("{not json\n")
    with pytest.raises(DatasetError, match=":1:"):
        load(path)


def test_generated_set_is_deterministic_and_grounded() -> None:
    bbc = CORPORA / "bbc"
    one = generate_cloze(bbc / "tech", 25, seed=7)
    two = generate_cloze(bbc / "tech", 25, seed=7)
    other = generate_cloze(bbc / "tech", 25, seed=8)
    assert [i.to_json() for i in one] == [i.to_json() for i in two]
    assert [i.question for i in one] != [i.question for i in other]
    assert len(one) == 25 and len({i.source for i in one}) == 25
    for item in one:
        text = (bbc / "tech" / item.source).read_bytes().decode("utf-8", "replace")
        assert " ".join(item.evidence.split()) in " ".join(text.split())
        assert item.type == "cloze" and item.question != item.evidence
        words = item.question.split()
        assert 2 <= len(words) < len(item.evidence.split())
        assert all(w in item.evidence for w in words)  # thinned, never invented


def test_compare_answers_counts_identical_and_names_changed() -> None:
    from eval.report import compare_answers

    def rec(qid: str, answer: str, key: str = "file_path", ms: float = 1.0) -> dict:
        return {"id": qid, "config": "hybrid", "result": {
            "answer": answer, "refused": False, "timings_ms": {"total": ms},
            "citations": [{"n": 1, key: "/a.txt"}], "retrieved": [{"chunk_id": "c1"}]}}

    old = [rec("q1", "A [1]", key="path"), rec("q2", "B [1]"), rec("q3", "C [1]")]
    new = [rec("q1", "A [1]", ms=9.0), rec("q2", "B changed [1]"), rec("q4", "D [1]")]
    out = compare_answers(old, new)
    assert "hybrid: answers 1 identical, 1 changed (q2)" in out  # timings and key spelling
    assert "2 question(s) in only one run" in out                # don't count

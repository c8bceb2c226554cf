"""The keyword table's packed, segmented postings score as bm25s does over the chunks
held now, whatever writes, removals, merges and compactions came before."""

from __future__ import annotations

import random
from pathlib import Path

import bm25s
import numpy as np
import pytest

from rag.store import keyword_table
from rag.store.keyword_table import KeywordTable, index_terms, node_text

WORDS = (
    "tariff", "minister", "election", "striker", "goal", "bank", "rates", "oil", "price",
    "shares", "market", "vote", "party", "court", "judge", "film", "award", "phone", "network",
    "virus", "match", "coach", "club", "budget", "tax", "deficit", "growth", "inflation",
    "strike", "union", "factory", "jobs",
)


def _chunk(rng: random.Random, n: int) -> tuple[str, str, dict[str, str]]:
    text = " ".join(rng.choice(WORDS[: rng.randint(4, len(WORDS))])
                    for _ in range(rng.randint(3, 40)))
    return f"a{n}:v:0", text, {"article_id": f"a{n}", "version": "v", "title": f"T{n % 7}"}


def _oracle(held: dict[str, tuple[str, str, dict[str, str]]], query: str
            ) -> dict[str, float]:
    """bm25s's scores of the chunks held, indexed afresh."""
    ids = sorted(held)
    model = bm25s.BM25(k1=keyword_table.K1, b=keyword_table.B, method="lucene")
    model.index([index_terms(node_text(*held[i])) for i in ids], show_progress=False)
    scores = model.get_scores(index_terms(query))
    return {i: float(s) for i, s in zip(ids, scores, strict=True) if s > 0}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scores_match_bm25s_through_writes_removals_and_merges(
        tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    table = KeywordTable(tmp_path / "k.sqlite")
    monkeypatch.setattr(keyword_table, "_COMPACT_AT", 30)  # compact often enough to be tested
    if seed == 3:  # segments capped small: a common term keeps several full ones
        monkeypatch.setattr(keyword_table, "_SEGMENT_MAX", 40)
    held: dict[str, tuple[str, str, dict[str, str]]] = {}
    made = 0
    for step in range(40):
        if held and rng.random() < 0.3:
            for cid in rng.sample(sorted(held), k=min(len(held), rng.randint(1, 6))):
                table.remove_ids([cid]) if step % 2 else table.remove_article(
                    held[cid][2]["article_id"])
                del held[cid]
        else:
            batch = [_chunk(rng, made + i) for i in range(rng.randint(1, 25))]
            made += len(batch)
            assert table.add(batch) == len(batch)
            assert table.add(batch[:1]) == 0  # held already: left as it is
            held.update((c[0], c) for c in batch)
        query = " ".join(rng.sample(WORDS, 3))
        want = _oracle(held, query) if held else {}
        got = {cid: score for cid, _, _, score in table.search(query, top_k=len(WORDS) * 99)}
        assert got.keys() == want.keys(), step
        assert np.allclose([got[k] for k in sorted(got)], [want[k] for k in sorted(want)],
                           rtol=1e-5), step
        for k in (1, 3, 8):  # the pruned search's top k are bm25s's
            top = table.search(query, top_k=k)
            assert [s for *_, s in top] == pytest.approx(
                sorted(want.values(), reverse=True)[:k], rel=1e-5), (step, k)
            assert all(want[cid] == pytest.approx(s, rel=1e-5) for cid, _, _, s in top)
        assert table.ids() == set(held) and table.count() == len(held)
    segments = table.db.execute(
        "SELECT max(c) FROM (SELECT count(*) AS c FROM postings GROUP BY term)").fetchone()[0]
    assert segments <= (30 if seed == 3 else 8)  # merged as it went: log n, plus the cap's


def test_top_k_comes_best_first_and_a_filter_reads_on(tmp_path: Path) -> None:
    table = KeywordTable(tmp_path / "k.sqlite")
    rows = [(f"a{i}:v:0", "oil " * (1 + i % 5) + "price", {"article_id": f"a{i}",
                                                         "outlet": "odd" if i % 2 else "even"})
            for i in range(400)]
    table.add(rows)
    best = table.search("oil", top_k=5)
    assert len(best) == 5 and [s for *_, s in best] == sorted((s for *_, s in best),
                                                              reverse=True)
    odd = table.search("oil", top_k=150, keep=lambda m: m["outlet"] == "odd")
    assert len(odd) == 150 and all(m["outlet"] == "odd" for _, _, m, _ in odd)
    assert table.search("zebra", top_k=5) == []

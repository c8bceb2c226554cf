"""Records to metrics: gold articles and passages resolved against the store, then
every metric of `eval.metrics` aggregated per configuration."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval import metrics as m
from eval.qa import QAItem
from rag.store import ArticleStore

KS = (1, 5, 10)
# Metrics where a lower figure is better (for `compare` and the chart's reading).
LOWER_IS_BETTER = {"unsupported_rate", "false_refusal_rate", "latency_retrieve_p50_ms",
                   "latency_retrieve_p95_ms", "latency_answer_p50_ms", "latency_answer_p95_ms",
                   "latency_total_p50_ms", "latency_total_p95_ms"}


@dataclass
class Gold:
    article_ids: set[str]
    spans: dict[str, tuple[int, int]]  # article id -> evidence span in its text
    n_relevant_passages: int


def _find_span(text: str, evidence: str) -> tuple[int, int] | None:
    start = text.find(evidence)
    if start >= 0:
        return start, start + len(evidence)
    words = evidence.split()
    if not words:
        return None
    match = re.search(r"\s+".join(re.escape(w) for w in words), text)
    return (match.start(), match.end()) if match else None


def resolve_gold(items: list[QAItem], store: ArticleStore, corpus: Path) -> dict[str, Gold]:
    golds: dict[str, Gold] = {}
    chunks_by_article: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in store.chunk_records():
        chunks_by_article[record["article_id"]].append(record)
    by_title: dict[str, list[Any]] = defaultdict(list)
    for stored in store.list_articles():
        by_title[_title_key(stored.title)].append(stored)
    for item in items:
        if not item.answerable:
            continue
        path = str((corpus / item.source).resolve())
        own = {a.id: a for a in store.find_by_path(path)}
        # The corpus holds near-copies (the same story under one headline, a word or two
        # apart): a copy that also holds the evidence sentence answers the question too.
        twins = {t.id: t for a in own.values() for t in by_title[_title_key(a.title)]
                 if t.id not in own} if item.evidence else {}
        gold_ids: set[str] = set()
        spans: dict[str, tuple[int, int]] = {}
        n_relevant = 0
        for aid in [*own, *twins]:
            full = store.get_article(aid)
            span = _find_span(full.text, item.evidence) if item.evidence and full else None
            if span:
                spans[aid] = span
                n_relevant += sum(1 for c in chunks_by_article[aid]
                                  if c["start"] < span[1] and c["end"] > span[0])
            elif aid in twins:
                continue  # a copy without the evidence is another version: not gold
            else:  # no evidence sentence: any passage of the gold article counts
                n_relevant += len(chunks_by_article[aid])
            gold_ids.add(aid)
        golds[item.id] = Gold(gold_ids, spans, max(n_relevant, 1))
    return golds


def _title_key(title: str) -> str:
    return " ".join(title.split()).casefold()


def _passage_relevant(passage: dict[str, Any], gold: Gold) -> bool:
    if passage["article_id"] not in gold.article_ids:
        return False
    span = gold.spans.get(passage["article_id"])
    return span is None or (passage["start"] < span[1] and passage["end"] > span[0])


def score_record(item: QAItem, result: dict[str, Any], gold: Gold | None) -> dict[str, float]:
    """Per-question figures; keys absent where a metric does not apply."""
    out: dict[str, float] = {}
    timings = result.get("timings_ms", {})
    for stage in ("retrieve", "answer", "total"):
        if stage in timings:
            out[f"_t_{stage}"] = timings[stage]
    choices = [c["article_id"] for c in result.get("clarify") or []]
    refused = bool(result["refused"]) or bool(choices)  # a question back answers nothing
    if gold is None:  # unanswerable
        out["refusal_rate"] = float(refused)
        return out
    if item.type == "vague":  # right: ask back offering the story, or answer from it
        cited = [c["article_id"] for c in result["citations"]]
        out["vague_ok"] = float(bool(set(choices) & gold.article_ids) if choices
                                else not refused and bool(cited) and cited[0] in gold.article_ids)
        out["clarify_rate"] = float(bool(choices))
        return out
    out["false_refusal_rate"] = float(refused)
    retrieved = result["retrieved"]
    articles: list[str] = list(dict.fromkeys(p["article_id"] for p in retrieved))
    art_rel = [a in gold.article_ids for a in articles]
    pas_rel = [_passage_relevant(p, gold) for p in retrieved]
    for k in KS:
        out[f"article_hit@{k}"] = m.hit_at(art_rel, k)
        out[f"passage_hit@{k}"] = m.hit_at(pas_rel, k)
    out["article_mrr"] = m.reciprocal_rank(art_rel)
    out["passage_mrr"] = m.reciprocal_rank(pas_rel)
    out["article_ndcg@10"] = m.ndcg_at(art_rel, 10, 1)
    out["passage_ndcg@10"] = m.ndcg_at(pas_rel, 10, gold.n_relevant_passages)
    if item.type == "cloze":
        return out  # retrieval-only questions
    answer = result["answer"]
    if item.answers:
        out["answer_contains"] = m.contains_answer(answer, item.answers)
        out["answer_f1"] = m.token_f1(answer, item.answers)
    if item.keywords:
        out["keyword_recall"] = m.keyword_recall(answer, item.keywords)
    citations = result["citations"]
    if citations:
        good = [c["article_id"] in gold.article_ids
                or bool(item.evidence and m.normalize_answer(item.evidence)
                        in m.normalize_answer(c["quote"]))
                for c in citations]
        out["citation_precision"] = sum(good) / len(good)
    sentences = result["sentences"]
    if sentences and not refused:
        supported = sum(1 for s in sentences if s["supported"])
        out["support_rate"] = supported / len(sentences)
        out["unsupported_rate"] = 1 - supported / len(sentences)
    return out


def aggregate(items: list[QAItem], records: list[dict[str, Any]], golds: dict[str, Gold],
              judged: dict[tuple[str, str], dict[str, float]] | None = None
              ) -> dict[str, dict[str, Any]]:
    by_id = {item.id: item for item in items}
    per_config: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        item = by_id[record["id"]]
        scores = score_record(item, record["result"], golds.get(item.id))
        for key, value in {**scores, **(judged or {}).get((record["id"], record["config"]),
                                                          {})}.items():
            per_config[record["config"]][key].append(value)
    report: dict[str, dict[str, Any]] = {}
    for config, values in per_config.items():
        row: dict[str, Any] = {}
        for key in sorted(values):
            if key.startswith("_t_"):
                stage = key[3:]
                row[f"latency_{stage}_p50_ms"] = round(m.percentile(values[key], 50), 1)
                row[f"latency_{stage}_p95_ms"] = round(m.percentile(values[key], 95), 1)
            else:
                row[key] = round(m.mean(values[key]), 4)
                row[f"n_{key}"] = len(values[key])
        report[config] = row
    return report

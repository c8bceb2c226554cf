"""Records to metrics: gold articles and passages resolved against the store, then
every metric of `eval.metrics` aggregated per configuration."""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval import metrics as m
from eval import temporal
from eval.qa import QAItem, is_url, url_key
from rag.store.articles import ArticleStore

logger = logging.getLogger(__name__)

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
    # A timeline's events may share an article: its spans after the first.
    more_spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    urls: set[str] = field(default_factory=set)  # `url_key` of URL sources
    n_sources: int = 1  # articles an ideal ranking finds: a timeline's, one per source

    def cites_gold(self, citation: dict[str, Any]) -> bool:
        """The citation is of a gold article: by the resolved id, or by its URL."""
        url = citation.get("url")
        if citation.get("article_id") in self.article_ids:
            return True
        return bool(url) and url_key(url) in self.urls


def _find_span(text: str, evidence: str) -> tuple[int, int] | None:
    start = text.find(evidence)
    if start >= 0:
        return start, start + len(evidence)
    words = evidence.split()
    if not words:
        return None
    match = re.search(r"\s+".join(re.escape(w) for w in words), text)
    return (match.start(), match.end()) if match else None


def _gold_sources(item: QAItem) -> list[tuple[str, str | None]]:
    """(source, evidence) pairs: the item's own, or one per timeline event."""
    if item.source is not None:
        return [(item.source, item.evidence)]
    return [(event["source"], event["evidence"]) for event in item.timeline or []]


def resolve_gold(items: list[QAItem], store: ArticleStore, corpus: Path) -> dict[str, Gold]:
    """Gold articles and evidence spans in the store. A source is a path relative to
    `corpus` or, for a corpus of articles with URLs (a .jsonl file), the article's URL."""
    golds: dict[str, Gold] = {}
    chunks_by_article: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in store.chunk_records():
        chunks_by_article[record["article_id"]].append(record)
    by_title: dict[str, list[Any]] = defaultdict(list)
    by_url: dict[str, list[Any]] = defaultdict(list)
    for stored in store.list_articles():
        by_title[_title_key(stored.title)].append(stored)
        if stored.url:
            by_url[url_key(stored.url)].append(stored)
    for item in items:
        if not item.answerable:
            continue
        gold_ids: set[str] = set()
        spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
        urls: set[str] = set()
        for source, evidence in _gold_sources(item):
            if is_url(source):
                urls.add(url_key(source))
                own = {a.id: a for a in by_url[url_key(source)]}
            else:
                own = {a.id: a for a in store.find_by_path(str((corpus / source).resolve()))}
            # The corpus holds near-copies (the same story under one headline, a word or
            # two apart): a copy that also holds the evidence sentence answers it too.
            twins = {t.id: t for a in own.values() for t in by_title[_title_key(a.title)]
                     if t.id not in own} if evidence else {}
            for aid in [*own, *twins]:
                full = store.get_article(aid)
                span = _find_span(full.text, evidence) if evidence and full else None
                if span:
                    spans[aid].append(span)
                elif aid in twins:
                    continue  # a copy without the evidence is another version: not gold
                gold_ids.add(aid)
        # relevant passages: those overlapping an evidence span, or any passage of a gold
        # article without one; each counted once however many events it holds
        relevant = {c["id"] for aid in gold_ids for c in chunks_by_article[aid]
                    if aid not in spans or any(c["start"] < b and c["end"] > a
                                               for a, b in spans[aid])}
        golds[item.id] = Gold(gold_ids, {aid: s[0] for aid, s in spans.items()},
                              max(len(relevant), 1),
                              {aid: s[1:] for aid, s in spans.items() if len(s) > 1}, urls,
                              len({source for source, _ in _gold_sources(item)}))
    return golds


def _title_key(title: str) -> str:
    return " ".join(title.split()).casefold()


def _passage_relevant(passage: dict[str, Any], gold: Gold) -> bool:
    if passage["article_id"] not in gold.article_ids:
        return False
    span = gold.spans.get(passage["article_id"])
    if span is None:
        return True
    spans = [span, *gold.more_spans.get(passage["article_id"], [])]
    return any(passage["start"] < end and passage["end"] > start for start, end in spans)


def score_record(item: QAItem, result: dict[str, Any], gold: Gold | None,
                 picked: list[dict[str, Any]] | None = None) -> dict[str, float]:
    """Per-question figures; keys absent where a metric does not apply. `picked`: what
    each story offered back gave when asked about (`eval.runner.picked`)."""
    out: dict[str, float] = temporal.score(item, result, gold.article_ids if gold else ())
    if picked:
        # An offered story answers when picked: not refused, and cited. It measures what
        # a person would see (a choice that leads to "The articles don't say" was no
        # choice), judged by the engine's own reader: an offered story that answers with
        # a sentence beside the point is not caught.
        out["choice_answers"] = sum(not p["refused"] and p["article_id"] in p["cited"]
                                    for p in picked) / len(picked)
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
    out["article_ndcg@10"] = m.ndcg_at(art_rel, 10, gold.n_sources)
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
        evidence = [m.normalize_answer(e) for _, e in _gold_sources(item) if e]
        good = [gold.cites_gold(c)
                or any(e in m.normalize_answer(c["quote"]) for e in evidence if e)
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
    missing: Counter[str] = Counter()
    for record in records:
        item = by_id[record["id"]]
        missing.update(temporal.missing_fields(item, record["result"]))
        scores = score_record(item, record["result"], golds.get(item.id), record.get("picked"))
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
    for name, count in missing.items():
        logger.warning("%d answer(s) of dated questions have no %r (an engine without dated "
                       "answers?): the metrics that read it are not scored for them",
                       count, name)
    return report

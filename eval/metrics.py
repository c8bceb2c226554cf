"""Metric definitions, kept pure so the tests can check them against hand-worked numbers.

Retrieval (binary relevance, ranks counted from 1):
- hit@k: 1 if a relevant item is among the first k, else 0.
- MRR: 1 / rank of the first relevant item (0 when none is retrieved).
- nDCG@k: DCG = sum over ranks i <= k of rel_i / log2(i + 1); divided by the DCG of an
  ideal ranking that puts all `n_relevant` relevant items first (Järvelin & Kekäläinen).
Answers (SQuAD-style normalisation: lower case, no punctuation, no articles):
- contains: some gold answer string occurs in the answer.
- token F1: the best F1 between the answer's tokens and one gold answer's tokens.
- keyword recall: share of gold keywords that occur in the answer.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence


def first_relevant_rank(relevant: Sequence[bool]) -> int | None:
    for i, rel in enumerate(relevant, start=1):
        if rel:
            return i
    return None


def hit_at(relevant: Sequence[bool], k: int) -> float:
    return 1.0 if any(relevant[:k]) else 0.0


def reciprocal_rank(relevant: Sequence[bool]) -> float:
    rank = first_relevant_rank(relevant)
    return 1.0 / rank if rank else 0.0


def ndcg_at(relevant: Sequence[bool], k: int, n_relevant: int | None = None) -> float:
    """nDCG@k for binary relevance; `n_relevant` is how many relevant items exist in
    all (defaults to how many were retrieved, the usual fallback)."""
    dcg = sum(1.0 / math.log2(i + 1) for i, rel in enumerate(relevant[:k], start=1) if rel)
    ideal_n = min(k, n_relevant if n_relevant is not None else sum(map(bool, relevant)))
    if ideal_n == 0:
        return 0.0
    idcg = sum(1.0 / math.log2(i + 1) for i in range(1, ideal_n + 1))
    return dcg / idcg


def normalize_answer(text: str) -> str:
    text = text.lower().replace("’", "'")
    text = re.sub(r"\[\d+\]", " ", text)  # citation markers are not words
    text = "".join(ch for ch in text if ch not in set(string.punctuation) - {"$", "%", "£"})
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def contains_answer(prediction: str, answers: Sequence[str]) -> float:
    pred = normalize_answer(prediction)
    return 1.0 if any(normalize_answer(a) and normalize_answer(a) in pred for a in answers) else 0.0


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    pred = normalize_answer(prediction).split()
    best = 0.0
    for answer in answers:
        gold = normalize_answer(answer).split()
        common = Counter(pred) & Counter(gold)
        same = sum(common.values())
        if not same:
            continue
        precision, recall = same / len(pred), same / len(gold)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def keyword_recall(prediction: str, keywords: Sequence[str]) -> float:
    if not keywords:
        return 0.0
    pred = normalize_answer(prediction)
    return sum(1 for k in keywords if normalize_answer(k) in pred) / len(keywords)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None

"""The reader's learned decision: which candidate sentences the model reads, which one
states the answer, and whether any does.

Two logistic regressions over measures of each candidate sentence, fitted by
`python -m eval.fit_reader` on dev questions only and kept as plain numbers in
`reader_model.json` beside this module (no pickle: a file anyone can read, and no code
runs on load):

- the *shortlist* model ranks every candidate on what costs nothing (the picker's
  measures, the heuristic's score and margin, passage rank and retrieval score, the
  sentence's place in its article, whether the question's names, numbers and rare
  words are in it, whether it holds what the question type asks for); the model reads
  its best `k`;
- the *chooser* adds what the local model said of each (its P(yes), and how that
  compares with the other sentences read) and gives P(this sentence states the answer).

The best sentence by the chooser leads the answer; when even it is under `threshold`,
the question is refused. Why learned and not hand-set: docs/decisions/learned-reader.md.
A scikit-learn `LogisticRegression` is what is fitted; applying it is one dot product,
written here so that answering needs no scikit-learn import.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.answer.draft.extractive import HeuristicReader, _has_type, question_type
from rag.answer.readers.base import Candidate, Question
from rag.text import content_terms, numbers

MODEL_FILE = Path(__file__).with_name("reader_model.json")
KINDS = ("why", "when", "numeric", "who", "how", "which", "what")
_NAME = re.compile(r"\b[A-Z][\w'’-]+")


def _names(question: str) -> list[str]:
    """The question's capitalised words past its first: the names it turns on."""
    words = _NAME.findall(question)
    first = question.split()[0] if question.split() else ""
    return [w.lower() for w in words if w != first and len(w) > 2]


def _share(wanted: Sequence[str], text: str) -> float:
    if not wanted:
        return 1.0
    low = text.lower()
    return sum(w in low for w in wanted) / len(wanted)


def cheap_features(question: Question, candidates: list[Candidate],
                   heuristic: HeuristicReader | None = None) -> list[dict[str, float]]:
    """The measures of each candidate that cost no model call, in the candidates' order."""
    heuristic = heuristic or HeuristicReader()
    kind = question.kind or question_type(question.text)
    scores = [heuristic.score(c, kind) for c in candidates]
    best = max(scores, default=0.0)
    order = {i: r for r, i in enumerate(sorted(range(len(scores)), key=lambda i: -scores[i]))}
    gate = float(heuristic.passes_gates(question, candidates))
    passages = question.passages
    top_score = max((p.score for p in passages), default=0.0) or 1.0
    first = min(order, key=order.__getitem__, default=None)  # the heuristic's best
    lead_article = passages[candidates[first].passage].article_id if first is not None else None
    names = _names(question.text)
    q_numbers = sorted(n for n in numbers(question.text) if len(n) >= 2)
    q_terms = list(dict.fromkeys(content_terms(question.text)))
    best_dense = max((c.dense for c in candidates), default=0.0)
    best_lexical = max((c.lexical for c in candidates), default=0.0)
    rows = []
    for i, cand in enumerate(candidates):
        passage = passages[cand.passage]
        offset = passage.start + cand.start  # where the sentence starts in its article
        terms = set(content_terms(cand.text))
        row = {
            "h_score": scores[i],
            "h_margin": scores[i] - best,
            "h_rank": math.log1p(order[i]),
            "h_first": float(order[i] == 0),
            "gate": gate,
            "dense": cand.dense,
            "lexical": cand.lexical,
            "own": cand.own,
            "context": cand.context,
            "novelty": cand.novelty,
            "typed": float(cand.typed),
            "has_type": float(_has_type(kind, cand.text, question.text)),
            "passage_rank": math.log1p(cand.passage),
            "passage_score": passage.score / top_score,
            "offset": math.log1p(offset / 100),
            "lead": float(offset < 300),
            "lead_article": float(passage.article_id == lead_article),
            "names_in": _share(names, cand.text),
            "names_passage": _share(names, passage.title + " " + passage.text),
            "numbers_in": _share(q_numbers, cand.text),
            "terms_in": (sum(t in terms for t in q_terms) / len(q_terms)) if q_terms else 1.0,
            "words": math.log1p(len(cand.text.split())),
            "best_dense": best_dense,
            "best_lexical": best_lexical,
        }
        row.update({f"kind_{k}": float(kind == k) for k in KINDS})
        rows.append(row)
    return rows


def with_model_features(rows: list[dict[str, float]],
                        p_yes: Sequence[float]) -> list[dict[str, float]]:
    """The shortlisted rows (in shortlist order) with what the local model said of them."""
    best = max(p_yes, default=0.0)
    ranked = sorted(range(len(p_yes)), key=lambda i: -p_yes[i])
    rank = {i: r for r, i in enumerate(ranked)}
    out = []
    for i, (row, p) in enumerate(zip(rows, p_yes, strict=True)):
        clipped = min(max(p, 1e-4), 1 - 1e-4)
        out.append({**row, "p_yes": p, "p_logit": math.log(clipped / (1 - clipped)),
                    "p_gap": p - best, "p_first": float(rank[i] == 0),
                    "p_best": best, "shortlist_rank": math.log1p(i)})
    return out


@dataclass(frozen=True)
class Linear:
    """A fitted logistic regression: standardised features, weights, intercept."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def probability(self, rows: list[dict[str, float]]) -> np.ndarray:
        if not rows:
            return np.zeros(0)
        x = np.array([[row[n] for n in self.names] for row in rows], dtype=float)
        z = (x - np.array(self.mean)) / np.array(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.array(self.coef) + self.intercept)))

    def to_json(self) -> dict[str, Any]:
        return {"names": list(self.names), "mean": list(self.mean), "scale": list(self.scale),
                "coef": list(self.coef), "intercept": self.intercept}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Linear:
        return cls(tuple(data["names"]), tuple(data["mean"]), tuple(data["scale"]),
                   tuple(data["coef"]), float(data["intercept"]))


@dataclass(frozen=True)
class ReaderModel:
    """The two fitted models, how many sentences the local model reads at most (`k`),
    the chooser's probability at which it stops reading (`stop_at`: the sentence read
    is answer enough) and under which the question is refused (`threshold`)."""

    shortlist: Linear
    chooser: Linear
    k: int
    threshold: float
    stop_at: float = 1.01
    fitted: dict[str, Any] = field(default_factory=dict)  # provenance: data, counts, figures

    def to_json(self) -> dict[str, Any]:
        return {"shortlist": self.shortlist.to_json(), "chooser": self.chooser.to_json(),
                "k": self.k, "threshold": self.threshold, "stop_at": self.stop_at,
                "fitted": self.fitted}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReaderModel:
        return cls(Linear.from_json(data["shortlist"]), Linear.from_json(data["chooser"]),
                   int(data["k"]), float(data["threshold"]), float(data.get("stop_at", 1.01)),
                   dict(data.get("fitted", {})))

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> ReaderModel:
        return cls.from_json(json.loads(path.read_text()))

    def save(self, path: Path = MODEL_FILE) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")

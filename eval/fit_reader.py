"""Fit the reader's learned decision (`rag/answer/readers/learned.py`) on dev questions only.

    python -m eval.fit_reader --corpus ../shared/corpora --data-dir DIR [--collection NAME]

Three steps, each cached in `--work` (default eval/out/reader-fit) so a later step can
be rerun alone:

1. *collect*: every dev question (`bbc_qa_dev`, the dev half of `bbc_pastlead`) is
   answered by the engine with a reader that records the measured candidates. Each
   answerable question is asked a second time with its gold article and that article's
   story left out of the search (`Filters.exclude_ids`): an unanswerable question whose
   topic is still in the library, the hard case. A candidate is labelled 1 when it is
   in a gold article and overlaps the gold evidence sentence.
2. *read*: the shortlist model is fitted on every candidate; the local model's P(yes)
   is computed for each question's best `READ` candidates by it.
3. *fit*: the chooser is fitted on the read candidates; `k` (how many the model reads
   at most), `stop_at` (the chooser's probability at which it stops reading) and
   `threshold` (under which it refuses) are chosen by cross-validation over questions
   (5 folds): the fewest sentences read on average (each costs 0.5-1 s on 2 cores)
   among the settings whose refusal + right-sentence-first is within 0.02 of the best,
   each with the threshold that refuses most unanswerable questions (written and
   left-out) while refusing at most 5% of the answerable ones. The result is written
   to `rag/reader_model.json` with the data it came from.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eval.qa import QAItem, load
from eval.runner import eval_settings, left_out, prepare_store
from eval.scoring import resolve_gold
from rag.answer.draft.extractive import HeuristicReader
from rag.answer.engine import Engine
from rag.answer.readers.base import Candidate, Question, Reading
from rag.answer.readers.learned import (
    MODEL_FILE,
    Linear,
    ReaderModel,
    cheap_features,
    with_model_features,
)
from rag.answer.request import Ask
from rag.answer.retrieve import Filters
from rag.settings import Settings
from rag.types import AnswerMode

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "eval" / "datasets"
DEV_SETS = (("bbc_qa_dev.jsonl", None), ("bbc_pastlead.jsonl", "dev"))
READ = 4  # candidates the local model reads per question when collecting (0.5-1 s each)
MAX_K = 4


def dev_items() -> list[QAItem]:
    items = []
    for name, split in DEV_SETS:
        items += [i for i in load(DATASETS / name) if split is None or i.split == split]
    return items


@dataclass
class Recording:
    """A reader that records what it is asked and answers as the heuristic does."""

    name: str = "recording"
    seen: list[tuple[Question, list[Candidate]]] = field(default_factory=list)
    heuristic: HeuristicReader = field(default_factory=HeuristicReader)

    def read(self, question: Question, candidates: list[Candidate]) -> Reading:
        self.seen.append((question, candidates))
        return self.heuristic.read(question, candidates)

    def passes_gates(self, question: Question, candidates: list[Candidate],
                     offered: bool = False) -> bool:
        return self.heuristic.passes_gates(question, candidates, offered)

    def warm(self) -> None:
        """Nothing to load."""


def collect(items: list[QAItem], settings: Settings, corpus: Path) -> list[dict[str, Any]]:
    store = prepare_store(settings, corpus, do_ingest=False, progress=False)
    golds = resolve_gold(items, store, corpus)
    _, left = left_out(items, store, corpus, golds)
    recording = Recording()
    engine = Engine.from_settings(settings, store=store, reader=recording)
    out = []
    for n, item in enumerate(items):
        gold = golds.get(item.id)
        runs = [("asked", Filters())]
        if f"{item.id}~left-out" in left:
            runs.append(("left_out", left[f"{item.id}~left-out"]))
        for group, filters in runs:
            recording.seen.clear()
            engine.ask(Ask(item.question, filters=filters, mode=AnswerMode.EXTRACTIVE))
            if not recording.seen:
                continue  # a question back, or no candidates at all: nothing to learn
            question, candidates = recording.seen[-1]
            rows = cheap_features(question, candidates)
            labels = [0] * len(candidates)
            if group == "asked" and gold:
                for i, cand in enumerate(candidates):
                    passage = question.passages[cand.passage]
                    span = gold.spans.get(passage.article_id)
                    a, b = passage.start + cand.start, passage.start + cand.end
                    overlap = min(b, span[1]) - max(a, span[0]) if span else 0
                    if span and overlap > 0.5 * min(b - a, span[1] - span[0]):
                        labels[i] = 1
            out.append({"id": item.id, "group": group if item.answerable else "unanswerable",
                        "question": question.text, "type": item.type,
                        "texts": [c.text for c in candidates], "rows": rows, "labels": labels})
        if n % 20 == 0:
            logger.info("collected %d/%d questions", n + 1, len(items))
    return out


def fit_linear(rows: list[dict[str, float]], labels: list[int], names: list[str],
               c: float = 1.0) -> Linear:
    from sklearn.linear_model import LogisticRegression

    x = np.array([[r[n] for n in names] for r in rows], dtype=float)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    fitted = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
    fitted.fit((x - mean) / scale, np.array(labels))
    return Linear(tuple(names), tuple(mean.tolist()), tuple(scale.tolist()),
                  tuple(fitted.coef_[0].tolist()), float(fitted.intercept_[0]))


def cheap_names(data: list[dict[str, Any]]) -> list[str]:
    return sorted(data[0]["rows"][0])


def read_shortlists(data: list[dict[str, Any]], shortlist: Linear, settings: Settings) -> None:
    """P(yes) of each question's best READ candidates by the shortlist model, in place."""
    from rag.answer.readers.llm import YesNo
    from rag.local_model.runtime import local_llm

    reader = YesNo(local_llm(settings))
    reader.warm()
    for n, q in enumerate(data):
        order = np.argsort(-shortlist.probability(q["rows"]), kind="stable")[:READ]
        q["read"] = [int(i) for i in order]
        q["p_yes"] = [reader.yes_one(q["question"], q["texts"][i]) for i in order]
        if n % 50 == 0:
            logger.info("read %d/%d questions", n + 1, len(data))


def chooser_rows(q: dict[str, Any], k: int) -> tuple[list[dict[str, float]], list[int]]:
    idx = q["read"][:k]
    rows = with_model_features([q["rows"][i] for i in idx], q["p_yes"][:k])
    return rows, [q["labels"][i] for i in idx]


def reading(q: dict[str, Any], chooser: Linear, k: int, stop_at: float) -> np.ndarray:
    """The chooser's probabilities over the sentences read as the reader reads them:
    one at a time, in shortlist order, stopping once one reaches `stop_at`."""
    probs = np.zeros(0)
    for j in range(1, min(k, len(q["read"])) + 1):
        probs = chooser.probability(chooser_rows(q, j)[0])
        if probs.max() >= stop_at:
            break
    return probs


def outcome(data: list[dict[str, Any]], probs: list[np.ndarray],
            threshold: float) -> dict[str, float]:
    """Answer figures of a decision: refusal of the unanswerable (written and left-out),
    false refusal and right-sentence-first of the answerable, sentences read."""
    def answered(q: dict[str, Any], p: np.ndarray) -> bool:  # as LLMReader.read decides
        return q["rows"][0]["gate"] > 0 and len(p) > 0 and p.max() >= threshold

    ans = [(q, p) for q, p in zip(data, probs, strict=True) if q["group"] == "asked"]
    neg = [(q, p) for q, p in zip(data, probs, strict=True) if q["group"] != "asked"]
    refused = [not answered(q, p) for q, p in neg]
    false = [not answered(q, p) for q, p in ans]
    right = [answered(q, p) and q["labels"][q["read"][int(p.argmax())]] == 1 for q, p in ans]
    return {"refusal": float(np.mean(refused)) if refused else 0.0,
            "false_refusal": float(np.mean(false)) if false else 0.0,
            "right_first": float(np.mean(right)) if right else 0.0,
            "reads": float(np.mean([len(p) for p in probs])) if probs else 0.0}


def trains(q: dict[str, Any]) -> bool:
    """Whether a question's read candidates are labelled for certain: an unanswerable
    one (all 0), or an answerable one whose evidence sentence was among those read (an
    answerable one without it may hold its answer in another wording: left out)."""
    return q["group"] != "asked" or any(q["labels"][i] for i in q["read"])


def fit_chooser(data: list[dict[str, Any]], names: list[str], k: int) -> Linear:
    rows, labels = [], []
    for q in filter(trains, data):
        r, y = chooser_rows(q, k)
        rows += r
        labels += y
    return fit_linear(rows, labels, names)


def choose_threshold(data: list[dict[str, Any]], probs: list[np.ndarray],
                     max_false: float = 0.05) -> tuple[float, dict[str, float]]:
    """The threshold that refuses most unanswerable questions while refusing at most
    `max_false` of the answerable ones."""
    best = (0.0, outcome(data, probs, 0.0))
    for t in np.arange(0.01, 0.98, 0.01):
        got = outcome(data, probs, float(t))
        if got["false_refusal"] <= max_false and got["refusal"] >= best[1]["refusal"]:
            best = (round(float(t), 2), got)
    return best


def tune(data: list[dict[str, Any]], names: list[str], folds: int = 5
         ) -> tuple[int, float, float, dict[str, Any]]:
    """k, stop_at and threshold by cross-validation over questions: the fewest sentences
    read on average among the settings whose refusal + right-first is within 0.02 of
    the best."""
    trials: dict[tuple[int, float], tuple[float, dict[str, float]]] = {}
    for k in range(1, min(MAX_K, READ) + 1):
        models = [fit_chooser([q for i, q in enumerate(data) if i % folds != f], names, k)
                  for f in range(folds)]
        for stop_at in (*np.arange(0.5, 0.96, 0.05).round(2), 1.01):
            probs = [reading(q, models[i % folds], k, float(stop_at))
                     for i, q in enumerate(data)]
            trials[(k, float(stop_at))] = choose_threshold(data, probs)
    score = {key: t[1]["refusal"] + t[1]["right_first"] for key, t in trials.items()}
    top = max(score.values())
    k, stop_at = min((key for key in score if score[key] >= top - 0.02),
                     key=lambda key: (trials[key][1]["reads"], -score[key]))
    threshold, _ = trials[(k, stop_at)]
    table = {f"k={kk} stop_at={ss}": {"threshold": t[0], **{m: round(v, 3)
                                                            for m, v in t[1].items()}}
             for (kk, ss), t in trials.items()}
    return k, stop_at, threshold, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.fit_reader", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--collection")
    parser.add_argument("--work", type=Path, default=ROOT / "eval" / "out" / "reader-fit")
    parser.add_argument("--step", choices=("collect", "read", "fit", "all"), default="all")
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = eval_settings(Settings(reader="heuristic"), args.corpus, args.data_dir,
                             args.collection)
    args.work.mkdir(parents=True, exist_ok=True)
    collected, read = args.work / "collected.json", args.work / "read.json"
    if args.step in ("collect", "all"):
        data = collect(dev_items(), settings, args.corpus)
        collected.write_text(json.dumps(data))
        logger.info("collected %d question runs", len(data))
    data = json.loads(collected.read_text())
    names = cheap_names(data)
    shortlist = fit_linear([r for q in data for r in q["rows"]],
                           [y for q in data for y in q["labels"]], names)
    if args.step in ("read", "all"):
        read_shortlists(data, shortlist, settings.override(reader="llm"))
        read.write_text(json.dumps(data))
    if args.step not in ("fit", "all"):
        return 0
    data = json.loads(read.read_text())
    chooser_names = sorted(with_model_features([data[0]["rows"][0]], [0.5])[0])
    k, stop_at, threshold, table = tune(data, chooser_names)
    chosen = table[f"k={k} stop_at={stop_at}"]
    counts = {g: sum(q["group"] == g for q in data) for g in ("asked", "unanswerable",
                                                              "left_out")}
    model = ReaderModel(shortlist, fit_chooser(data, chooser_names, k), k, threshold, stop_at, {
        "data": [f"{name}{' (' + split + ')' if split else ''}" for name, split in DEV_SETS],
        "question_runs": counts,
        "answerable_with_the_sentence_read": sum(q["group"] == "asked" and trains(q)
                                                 for q in data),
        "candidates": sum(len(q["labels"]) for q in data),
        "read_per_question": READ,
        "cross_validated": table,
    })
    model.save(args.out)
    logger.info("wrote %s: k=%d, stop_at %.2f, threshold %.2f, cross-validated %s", args.out,
                k, stop_at, threshold, chosen)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reports: report.json, report.md, report.png, the printed summary, and `compare`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval.scoring import LOWER_IS_BETTER

# The order figures are shown in; anything else measured follows.
ORDER = [
    "article_hit@1", "article_hit@5", "article_hit@10", "article_mrr", "article_ndcg@10",
    "passage_hit@1", "passage_hit@5", "passage_hit@10", "passage_mrr", "passage_ndcg@10",
    "answer_contains", "answer_f1", "keyword_recall",
    "citation_precision", "support_rate", "unsupported_rate",
    "refusal_rate", "false_refusal_rate", "vague_ok", "clarify_rate",
    "choice_answers",
    "filter_accuracy", "date_accuracy", "latest_accuracy", "timeline_recall",
    "timeline_precision", "timeline_order",
    "timeline_date_accuracy", "topic_year_no_filter",
    "faithfulness", "relevancy", "correctness",
    "latency_retrieve_p50_ms", "latency_retrieve_p95_ms", "latency_answer_p50_ms",
    "latency_answer_p95_ms", "latency_total_p50_ms", "latency_total_p95_ms",
]


def metric_names(configs: dict[str, dict[str, Any]]) -> list[str]:
    seen = {k for row in configs.values() for k in row if not k.startswith("n_")}
    return [k for k in ORDER if k in seen] + sorted(seen - set(ORDER))


def table(configs: dict[str, dict[str, Any]], judge_note: str | None = None) -> str:
    names = list(configs)
    lines = ["| metric | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]
    for metric in metric_names(configs):
        cells = []
        for name in names:
            value = configs[name].get(metric)
            cells.append("-" if value is None else f"{value:g}" if "latency" in metric
                         else f"{value:.3f}")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    if judge_note:
        lines.append(f"| faithfulness, relevancy, correctness | {judge_note} |"
                     + " |" * (len(names) - 1))
    return "\n".join(lines)


def write(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    md = [f"# Evaluation: {report['dataset']}", "",
          f"- corpus: `{report['corpus']}`",
          *([f"- split: {report['split']}"] if report.get("split") else []),
          f"- questions: {report['questions']} ({report['answerable']} answerable, "
          f"{report['questions'] - report['answerable']} unanswerable)",
          f"- configurations: {', '.join(report['configs'])}",
          f"- extractive reader: {report.get('reader', 'heuristic')}",
          f"- created: {report['created']}", "",
          table(report["configs"], report.get("judge")), "",
          "Metric definitions: see `eval/metrics.py` (dated questions: `eval/temporal.py`). "
          "Retrieval metrics count answerable questions only; refusal_rate counts "
          "unanswerable ones; each dated metric counts the questions with its field."]
    (out / "report.md").write_text("\n".join(md) + "\n")
    chart(report["configs"], out / "report.png")


def chart(configs: dict[str, dict[str, Any]], path: Path) -> None:
    """Grouped bars: one group per metric in [0, 1], one bar per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [k for k in metric_names(configs) if "latency" not in k
               and all(configs[c].get(k) is None or 0 <= configs[c][k] <= 1 for c in configs)]
    names = list(configs)
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(8, len(metrics) * 0.9), 5))
    for i, name in enumerate(names):
        values = [configs[name].get(k) or 0.0 for k in metrics]
        ax.bar([x + i * width for x in range(len(metrics))], values, width, label=name)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(metrics))])
    ax.set_xticklabels([k + (" (lower better)" if k in LOWER_IS_BETTER else "")
                        for k in metrics], rotation=50, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_title("Configurations compared, metric by metric")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What got better and what got worse, per configuration present in both."""
    lines: list[str] = []
    for config in [c for c in new["configs"] if c in old["configs"]]:
        a, b = old["configs"][config], new["configs"][config]
        better, worse, same = [], [], []
        for metric in metric_names({"a": a, "b": b}):
            if metric not in a or metric not in b:
                continue
            delta = b[metric] - a[metric]
            tolerance = 0.05 * abs(a[metric]) if "latency" in metric else 0.0005
            if abs(delta) <= tolerance:
                same.append(metric)
                continue
            improved = (delta < 0) == (metric in LOWER_IS_BETTER)
            row = f"    {metric:<26} {a[metric]:>10.4g} -> {b[metric]:<10.4g} ({delta:+.4g})"
            (better if improved else worse).append(row)
        lines.append(f"{config}: {len(better)} better, {len(worse)} worse, {len(same)} same")
        if better:
            lines += ["  better:", *better]
        if worse:
            lines += ["  worse:", *worse]
    missing = sorted(set(old["configs"]) ^ set(new["configs"]))
    if missing:
        lines.append(f"(configurations in only one report: {', '.join(missing)})")
    return "\n".join(lines)


# What an answer is, for comparing two runs: everything but timings (and the spelling
# of a source file's key, `path` before the answer had one JSON form, `file_path` since).
_ANSWER_KEYS = ("standalone_question", "answer", "refused", "mode", "model", "notice",
                "sentences", "citations")


def _answer_form(result: dict[str, Any]) -> dict[str, Any]:
    form = {k: result.get(k) for k in _ANSWER_KEYS}
    form["citations"] = [{("file_path" if k == "path" else k): v for k, v in c.items()}
                         for c in result.get("citations") or []]
    form["retrieved"] = [p.get("chunk_id") for p in result.get("retrieved") or []]
    return form


def compare_answers(old: list[dict[str, Any]], new: list[dict[str, Any]], most: int = 10
                    ) -> str:
    """Per configuration: how many questions got the very same answer (text, sentences,
    citations, retrieved passages) in both runs, and which did not."""
    before = {(r["config"], r["id"]): _answer_form(r["result"]) for r in old}
    after = {(r["config"], r["id"]): _answer_form(r["result"]) for r in new}
    lines = []
    for config in dict.fromkeys(c for c, _ in after):
        keys = [k for k in after if k[0] == config and k in before]
        changed = [k[1] for k in keys if before[k] != after[k]]
        line = f"{config}: answers {len(keys) - len(changed)} identical, {len(changed)} changed"
        if changed:
            line += " (" + ", ".join(changed[:most]) + (" …" if len(changed) > most else "") + ")"
        lines.append(line)
    only = len(set(before) ^ set(after))
    if only:
        lines.append(f"({only} question(s) in only one run)")
    return "\n".join(lines)


def read_records(report_json: Path) -> list[dict[str, Any]] | None:
    """The records.jsonl written beside a report.json, if it is there."""
    path = report_json.with_name("records.jsonl")
    if not path.is_file():
        return None
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

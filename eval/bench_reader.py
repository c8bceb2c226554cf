"""Reader benchmark, side by side in one run: the answer step's latency with the
heuristic reader and with the LLM reader, over the same questions and store. Prints
figures, asserts nothing.

    python -m eval.bench_reader --data-dir DIR --collection NAME [--dataset FILE] [--n 40]

The store is an evaluation store `python -m eval run` already filled (its folder and
collection are printed in the run's report); each question is asked once per reader,
alternating, so machine load falls on both alike. `answer` is the engine's own timing
of the answer step (candidates, reading, selection); `total` is the whole question.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from eval.metrics import percentile
from rag.answer.draft.extractive import HeuristicReader
from rag.answer.engine import Engine
from rag.answer.readers.llm import reader_for
from rag.answer.request import Ask
from rag.settings import PROJECT_ROOT, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.bench_reader", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--dataset", type=Path,
                        default=PROJECT_ROOT / "eval" / "datasets" / "bbc_qa_dev.jsonl")
    parser.add_argument("--n", type=int, default=40, help="questions asked (default 40)")
    parser.add_argument("--cold", type=int, default=3,
                        help="cold `rag ask` processes per reader (default 3; 0: none)")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.dataset.read_text().splitlines() if line.strip()]
    questions = [r["question"] for r in rows if not r.get("history")][: args.n]
    base = Settings(data_dir=args.data_dir, collection=args.collection, llm_model=None,
                    openai_base_url=None, answer_mode="extractive")
    llm, notice, _ = reader_for(base.override(reader="llm"))
    if notice:
        print(f"error: {notice}")
        return 1
    engines = {"heuristic": Engine.from_settings(base, reader=HeuristicReader())}
    engines["llm"] = Engine.from_settings(base, store=engines["heuristic"].store, reader=llm)
    times: dict[str, dict[str, list[float]]] = {k: {"answer": [], "total": []} for k in engines}
    for engine in engines.values():
        engine.ask(Ask(questions[0]))  # warm: the keyword index, the model's first prompt
    for question in questions:
        for name, engine in engines.items():
            timings = engine.ask(Ask(question)).timings_ms
            times[name]["answer"].append(timings.get("answer", 0.0) / 1000)
            times[name]["total"].append(timings.get("total", 0.0) / 1000)
    print(f"{len(questions)} questions from {args.dataset.name}, each asked of both readers")
    print("| reader | answer p50 s | answer p95 s | total p50 s | total p95 s |")
    print("|---|---|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {statistics.median(t['answer']):.2f} | "
              f"{percentile(t['answer'], 95):.2f} | {statistics.median(t['total']):.2f} | "
              f"{percentile(t['total'], 95):.2f} |")
    if args.cold:
        cold = cold_asks(args.data_dir, args.collection, questions[: args.cold])
        med = {name: statistics.median(t) for name, t in cold.items()}
        print(f"cold `python -m rag ask` (a new process per question, {args.cold} each, "
              f"alternating): heuristic p50 {med['heuristic']:.1f} s, llm p50 "
              f"{med['llm']:.1f} s: {med['llm'] / med['heuristic']:.2f}x")
    shown = chat_updates(engines["llm"], base, questions[: min(10, len(questions))])
    print(f"chat with the LLM reader ({len(shown['first'])} questions through the Chat tab's "
          f"handler): first update p50 {statistics.median(shown['first']):.3f} s, max "
          f"{max(shown['first']):.3f} s; answer shown p50 {statistics.median(shown['last']):.2f} s")
    return 0


def cold_asks(data_dir: Path, collection: str, questions: list[str]) -> dict[str, list[float]]:
    """Seconds for a whole `python -m rag ask` process per question, per reader: what a
    CLI user waits for (loading the embedding model, the local model and its saved
    prompt state included)."""
    out: dict[str, list[float]] = {"heuristic": [], "llm": []}
    for question in questions:
        for reader in out:
            env = {**os.environ, "RAG_READER": reader, "RAG_ANSWER_MODE": "extractive"}
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rag", "ask", question, "--data-dir",
                            str(data_dir), "--collection", collection, "--json"],
                           env=env, capture_output=True, check=True, timeout=600)
            out[reader].append(time.perf_counter() - started)
    return out


def chat_updates(engine: Engine, settings: Settings, questions: list[str]
                 ) -> dict[str, list[float]]:
    """Seconds until the chat first shows something ("Searching the articles…") and
    until it shows the answer, through `web.ui.chat.chat` as the page calls it."""
    from web.service import NewsApp
    from web.ui.chat import chat

    app = NewsApp(settings, engine=engine)
    app.warm_up()
    out: dict[str, list[float]] = {"first": [], "last": []}
    for question in questions:
        started = time.perf_counter()
        first = None
        for _ in chat(app, question, [], [], None, None, None, None, "extractive"):
            first = first or time.perf_counter() - started
        out["first"].append(first or 0.0)
        out["last"].append(time.perf_counter() - started)
    return out


if __name__ == "__main__":
    raise SystemExit(main())

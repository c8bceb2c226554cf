"""API benchmark, side by side in one run: what the OpenAI-compatible API adds to an
answer over `Engine.ask`. Prints figures, asserts nothing.

    python -m eval.bench_api --data-dir DIR --collection NAME [--dataset FILE] [--n 40]

The app is started in this process on the store (an evaluation store `python -m eval
run` filled), with the heuristic reader and extractive answers so the answer itself
costs the same each time. Each question is asked three ways, one after the other:
`Engine.ask`, the `openai` client's plain completion, and its stream read to the
end. "Added" is the median over questions of each API call's time minus the engine's
for the same question, so machine load that drifts over the run falls on both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import openai

from eval.metrics import percentile
from rag.settings import PROJECT_ROOT, Settings
from web import server as web_server
from web.service import NewsApp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.bench_api",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--dataset", type=Path,
                        default=PROJECT_ROOT / "eval" / "datasets" / "bbc_qa_dev.jsonl")
    parser.add_argument("--n", type=int, default=40, help="questions asked (default 40)")
    parser.add_argument("--port", type=int, default=7871)
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.dataset.read_text().splitlines() if line.strip()]
    questions = [r["question"] for r in rows if not r.get("history")][: args.n]
    settings = Settings(data_dir=args.data_dir, collection=args.collection, llm_model=None,
                        openai_base_url=None, answer_mode="extractive", reader="heuristic")
    app = NewsApp(settings)
    demo = web_server.start(app, "127.0.0.1", args.port, block=False)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{args.port}/v1", api_key="-",
                           max_retries=0)
    times: dict[str, list[float]] = {"engine": [], "api": [], "api stream": []}

    def plain(question: str) -> None:
        client.chat.completions.create(model="news-rag-extractive",
                                       messages=[{"role": "user", "content": question}])

    def streamed(question: str) -> None:
        for _ in client.chat.completions.create(
                model="news-rag-extractive", stream=True,
                messages=[{"role": "user", "content": question}]):
            pass

    calls = {"engine": app.engine.ask, "api": plain, "api stream": streamed}
    try:
        app.warm_up()
        for call in calls.values():
            call(questions[0])  # warm: the keyword index, the tokenizer, the connection
        for question in questions:
            for name, call in calls.items():
                started = time.perf_counter()
                call(question)
                times[name].append(time.perf_counter() - started)
    finally:
        demo.close()
    print(f"{len(questions)} questions from {args.dataset.name}, each asked three ways")
    print("| call | p50 s | p95 s | added over Engine.ask, p50 ms |")
    print("|---|---|---|---|")
    for name, t in times.items():
        over = [a - e for a, e in zip(t, times["engine"], strict=True)]
        added = "" if name == "engine" else f"{1000 * statistics.median(over):.0f}"
        print(f"| {name} | {statistics.median(t):.3f} | {percentile(t, 95):.3f} | {added} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

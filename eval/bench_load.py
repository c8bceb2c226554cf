"""A bounded load test of the running app, on loopback only: prints figures, asserts nothing.

    python -m eval.bench_load                                  # long: 16 users, 120 s, 300
    python -m eval.bench_load --users 4 --seconds 20 --ingest 20   # CI (tests/eval/test_load.py)
    python -m eval.bench_load [--users N] [--seconds S] [--ingest N] [--data-dir DIR] [--json]

Why: the app answers several users at once (RAG_ANSWER_CONCURRENCY, RAG_QUEUE_MAX) while
a CLI ingest writes the same embedded store from another process (the writer lock in
`rag/store/lock.py`, the reopen-on-generation in `rag/store/connection.py`). Unit tests exercise
each part alone; this runs them together for a fixed time and reports what a user
would see (throughput, latency, errors), whether the CLI's writes went through, and
whether the app's memory levels off.

What it does, all bounded in time:

1. ingests the seed article and the first 40 BBC articles (../shared/corpora, taken
   round-robin across the categories in sorted order) into a fresh data folder (a
   temporary one unless --data-dir);
2. starts `python app.py` on 127.0.0.1 and a free port (never any other address) and
   waits until `/ask` answers (the app loads its model first);
3. starts `python -m ingest` with the next --ingest BBC files and, at the same moment,
   --users client threads (each its own gradio_client) that ask `/ask` (extractive
   mode) questions from a fixed list until --seconds have passed;
4. samples the app's resident memory every 2 s, waits for the CLI ingest (with a
   timeout), stops the app and prints one table (or JSON with --json).

The processes and threads it runs are `eval.load_harness`'s. Diagnostics go to
`logging` (stderr); only the table is printed. The work folder (app and CLI logs, and
the data when no --data-dir was given) is deleted at the end unless something went
wrong, in which case its path is logged and returned.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from eval.load_harness import (
    HOST,
    REQUEST_TIMEOUT,
    SHOWN_ERRORS,
    Sampler,
    Tally,
    free_port,
    log_problems,
    rss_mb,
    run_user,
    start_app,
    stop_process,
    tail,
    wait_ready,
)
from rag.errors import UsageError
from rag.settings import PROJECT_ROOT, Settings  # sets the offline, no-telemetry environment

logger = logging.getLogger("eval.bench_load")

SHARED = Path(__file__).resolve().parents[2] / "shared"
SEED = SHARED / "corpora" / "seed"
BBC = SHARED / "corpora" / "bbc"
COLLECTION = "load"
FIRST_BBC = 40  # BBC articles in the store before the load starts
START_TIMEOUT = 180.0  # seconds for the app to load its model and answer
INGEST_TIMEOUT = 1800.0  # seconds the CLI ingest may take after the load ended
LEVEL_TOLERANCE = 0.10  # last third's peak within 10% of the middle third's: levelled off


# -- inputs -----------------------------------------------------------------------


def bbc_files() -> list[Path]:
    """Every BBC article, taken round-robin across the categories (each in sorted order),
    so any prefix mixes business, entertainment, politics, sport and tech."""
    categories = [sorted(d.glob("*.txt")) for d in sorted(BBC.iterdir()) if d.is_dir()]
    if not any(categories):
        raise SystemExit(f"no BBC articles under {BBC}")
    out: list[Path] = []
    for i in range(max(len(c) for c in categories)):
        out += [c[i] for c in categories if i < len(c)]
    return out


def seed_files() -> list[Path]:
    found = sorted(SEED.glob("*.txt"))
    if not found:
        raise SystemExit(f"no seed article under {SEED}")
    return found


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def rss_trend(samples: list[float]) -> str:
    """'levelled off' when the last third's peak is within 10% of the middle third's."""
    if len(samples) < 3:
        return "too few samples"
    third = len(samples) // 3
    middle = max(samples[third:2 * third])
    last = max(samples[2 * third:])
    return "levelled off" if last <= middle * (1 + LEVEL_TOLERANCE) else "still growing"


_SUMMARY = re.compile(r"(\d+) added, (\d+) updated, (\d+) unchanged, (\d+) failed")


# -- the run ----------------------------------------------------------------------


def run(users: int = 16, seconds: float = 120.0, ingest: int = 300,
        data_dir: Path | None = None, start_timeout: float = START_TIMEOUT,
        ingest_timeout: float = INGEST_TIMEOUT) -> dict[str, Any]:
    """The whole benchmark; the figures as a dict (see `format_table` for the keys)."""
    from ingest.pipeline import ingest as ingest_files
    from rag.store.articles import ArticleStore
    from rag.store.connection import forget

    if users < 1 or seconds <= 0 or ingest < 0:
        raise UsageError("users must be at least 1, seconds above 0, ingest 0 or more")
    bbc = bbc_files()
    if FIRST_BBC + ingest > len(bbc):
        raise UsageError(f"--ingest {ingest}: only {len(bbc) - FIRST_BBC} BBC files are left")
    work = Path(tempfile.mkdtemp(prefix="bench_load-"))
    data = Path(data_dir).expanduser().resolve() if data_dir else work / "data"
    if data.exists() and any(data.iterdir()):
        raise UsageError(f"{data} is not empty: the benchmark needs a fresh data folder")
    data.mkdir(parents=True, exist_ok=True)
    app_log, cli_log, cli_err = work / "app.log", work / "ingest.out", work / "ingest.err"
    result: dict[str, Any] = {"cores": os.cpu_count(), "users": users, "seconds": seconds,
                              "data_dir": str(data), "work_dir": str(work)}

    # 1. the store before the load
    settings = Settings(data_dir=data, collection=COLLECTION)
    store = ArticleStore(settings)
    started = time.perf_counter()
    report = ingest_files([str(p) for p in seed_files() + bbc[:FIRST_BBC]], store, settings,
                          progress=False)
    result["seed_added"] = report.count("added")
    result["seed_failed"] = [r.line() for r in report.failed]
    result["seed_articles"] = len(store.list_articles())
    logger.info("seeded %d articles (%d chunks) in %.1f s", result["seed_articles"],
                report.chunks_written, time.perf_counter() - started)
    del store
    forget(settings)  # this process holds no client on the store while the others run

    app: subprocess.Popen[bytes] | None = None
    cli: subprocess.Popen[bytes] | None = None
    sampler: Sampler | None = None
    tally = Tally()
    elapsed = 0.0
    try:
        # 2. the app
        port = free_port()
        url = f"http://{HOST}:{port}/"
        app = start_app(data, COLLECTION, port, app_log)
        result["app_ready_s"] = round(wait_ready(app, url, app_log, start_timeout), 1)
        logger.info("app (pid %d) answered after %.1f s", app.pid, result["app_ready_s"])

        # 3. the CLI ingest and the users, at once
        sampler = Sampler(app.pid)
        sampler.start()
        files = [str(p) for p in bbc[FIRST_BBC:FIRST_BBC + ingest]]
        result["cli_files"] = len(files)
        cli_done: dict[str, float] = {}
        load_started = time.monotonic()
        if files:
            with cli_log.open("wb") as out, cli_err.open("wb") as err:
                cli = subprocess.Popen(
                    [sys.executable, "-m", "ingest", "--data-dir", str(data), "--collection",
                     COLLECTION, "-q", *files], cwd=PROJECT_ROOT, stdout=out, stderr=err,
                    stdin=subprocess.DEVNULL)
            proc = cli

            def watch() -> None:
                proc.wait()
                cli_done["at"] = time.monotonic()

            threading.Thread(target=watch, name="cli-watch", daemon=True).start()
        deadline = load_started + seconds
        threads = [threading.Thread(target=run_user, args=(n, url, deadline, tally),
                                    name=f"user-{n}", daemon=True) for n in range(users)]
        for thread in threads:
            thread.start()
        for thread in threads:  # each stops by itself after the deadline
            thread.join(timeout=seconds + REQUEST_TIMEOUT + 60)
        stuck = sum(thread.is_alive() for thread in threads)
        if stuck:
            tally.add(None, f"{stuck} user thread(s) still running after the deadline")
        elapsed = time.monotonic() - load_started
        sampler.stopping.set()
        sampler.join()

        # 4. the CLI ingest's end
        if cli is not None:
            try:
                cli.wait(timeout=ingest_timeout)
            except subprocess.TimeoutExpired:
                logger.warning("the CLI ingest did not finish %g s after the load; stopping it",
                               ingest_timeout)
                stop_process(cli)
                result["cli_timed_out"] = True
            time.sleep(0.1)  # let the watcher record the moment
            result["cli_exit"] = cli.returncode
            result["cli_seconds"] = round(cli_done.get("at", time.monotonic()) - load_started, 1)
            summary = cli_log.read_text(errors="replace")
            match = _SUMMARY.search(summary)
            added, updated, unchanged, failed = (int(g) for g in match.groups()) if match \
                else (0, 0, 0, 0)
            result.update(cli_added=added, cli_updated=updated, cli_unchanged=unchanged,
                          cli_failed=failed, cli_summary=summary.strip().splitlines()[:1],
                          cli_stderr=tail(cli_err, 10).splitlines())
        else:
            result.update(cli_exit=0, cli_seconds=0.0, cli_added=0, cli_updated=0,
                          cli_unchanged=0, cli_failed=0, cli_summary=[], cli_stderr=[])
        result["rss_end_after_ingest_mb"] = rss_mb(app.pid)
    finally:
        if sampler is not None:
            sampler.stopping.set()
        if cli is not None:
            stop_process(cli)
        if app is not None:
            stop_process(app)

    samples = sampler.samples if sampler else []
    latencies = tally.latencies_ms
    result.update(
        elapsed=round(elapsed, 1),
        requests=tally.requests,
        answered=len(latencies),
        errors=tally.errors,
        error_messages=tally.messages,
        throughput=round(tally.requests / elapsed, 2) if elapsed else 0.0,
        p50_ms=_round(percentile(latencies, 50)),
        p95_ms=_round(percentile(latencies, 95)),
        max_ms=_round(max(latencies, default=None)),
        rss_samples=len(samples),
        rss_start_mb=_round(samples[0] if samples else None),
        rss_max_mb=_round(max(samples, default=None)),
        rss_end_mb=_round(samples[-1] if samples else None),
        rss_trend=rss_trend(samples),
        expected_articles=result["seed_articles"] + result["cli_added"],
    )
    result["rss_end_after_ingest_mb"] = _round(result["rss_end_after_ingest_mb"])
    result["app_log_problems"], result["app_log_lines"] = log_problems(app_log)
    trouble = (result["errors"] or result["cli_exit"] != 0 or result["app_log_problems"]
               or result["seed_failed"])
    if trouble:
        logger.warning("something went wrong: the logs are kept in %s", work)
    elif data_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        for path in (app_log, cli_log, cli_err):
            path.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    result["logs_kept"] = bool(trouble)
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _fmt(value: Any, unit: str = "") -> str:  # noqa: ANN401
    return "-" if value is None else f"{value:g}{unit}" if isinstance(value, float) \
        else f"{value}{unit}"


def format_table(r: dict[str, Any]) -> str:
    """The figures of `run` as the table the command prints."""
    rows = [
        ("cores", _fmt(r["cores"])),
        ("users", _fmt(r["users"])),
        ("seconds (asked / ran)", f"{_fmt(float(r['seconds']))} / {_fmt(r['elapsed'])}"),
        ("app ready after", _fmt(r.get("app_ready_s"), " s")),
        ("articles before the load", f"{r['seed_articles']} (seed + {FIRST_BBC} BBC)"),
        ("requests done", f"{r['requests']} ({r['answered']} answered)"),
        ("throughput", _fmt(r["throughput"], " req/s")),
        ("latency p50 / p95 / max", f"{_fmt(r['p50_ms'])} / {_fmt(r['p95_ms'])} / "
                                    f"{_fmt(r['max_ms'])} ms"),
        ("errors", _fmt(r["errors"])),
        *[("  error", m) for m in r["error_messages"]],
        ("CLI ingest files", _fmt(r.get("cli_files", 0))),
        ("CLI ingest exit code", _fmt(r["cli_exit"]) + (" (timed out)"
                                                         if r.get("cli_timed_out") else "")),
        ("CLI ingest duration", _fmt(r["cli_seconds"], " s")),
        ("CLI ingest result", "; ".join(r["cli_summary"]) or "-"),
        *[("  CLI stderr", line[:200]) for line in r["cli_stderr"]],
        ("articles expected after", _fmt(r["expected_articles"])),
        ("app RSS start / max / end", f"{_fmt(r['rss_start_mb'])} / {_fmt(r['rss_max_mb'])} / "
                                      f"{_fmt(r['rss_end_mb'])} MB ({r['rss_samples']} "
                                      "samples)"),
        ("app RSS after the ingest", _fmt(r["rss_end_after_ingest_mb"], " MB")),
        ("app RSS", r["rss_trend"]),
        ("app log problem lines", _fmt(r["app_log_problems"])),
        *[("  app log", line[:200]) for line in r["app_log_lines"][:SHOWN_ERRORS]],
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.bench_load",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=16, help="concurrent client threads")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the load runs")
    parser.add_argument("--ingest", type=int, default=300,
                        help="BBC files the CLI ingests while the app is under load")
    parser.add_argument("--data-dir", type=Path,
                        help="a fresh (missing or empty) store folder, kept afterwards "
                             "(default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    for name in ("httpx", "httpcore", "gradio_client"):  # a line per request otherwise
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        result = run(args.users, args.seconds, args.ingest, args.data_dir)
    except (ValueError, RuntimeError) as exc:
        sys.exit(f"error: {exc}")
    print(json.dumps(result, indent=2) if args.json else format_table(result))


if __name__ == "__main__":
    main()

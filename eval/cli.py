"""`python -m eval run | compare | generate`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval import qa, report, runner, scoring
from rag.errors import UsageError, exit_code
from rag.settings import PROJECT_ROOT, settings_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval",
                                     description="Score retrieval, answers, citations and "
                                                 "refusals on a question set.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="evaluate configurations on a dataset")
    run.add_argument("--dataset", type=Path, required=True, help="JSONL question set")
    run.add_argument("--corpus", type=Path, required=True,
                     help="folder the dataset's `source` paths are relative to, or a file "
                          "(a .jsonl corpus, whose articles `source` names by URL)")
    run.add_argument("--data-dir", type=Path,
                     help="evaluation store (default: eval/ inside RAG_DATA_DIR or the "
                          "project's data/)")
    run.add_argument("--collection", help="collection (default: named after the corpus)")
    run.add_argument("--no-ingest", action="store_true",
                     help="use the evaluation store as it is, without ingesting the corpus")
    run.add_argument("--config", action="append", choices=sorted(runner.CONFIGS),
                     help="configuration(s) to run (default: hybrid, dense, bm25, and llm "
                          "when an LLM is configured)")
    run.add_argument("--top-k", type=int, default=10, help="passages per question (10)")
    run.add_argument("--split", choices=qa.SPLITS,
                     help="only the questions of this split (the dataset needs `split`)")
    run.add_argument("--limit", type=int, help="only the first N questions")
    run.add_argument("--left-out", action="store_true",
                     help="ask each answerable question with its gold article (and that "
                          "article's story) left out of the search, scored as unanswerable")
    run.add_argument("--out", type=Path, help="output folder (default: eval/out/<time>)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="diagnostics (debug records of ingest, answering and judging) on stderr")
    cmp_ = sub.add_parser("compare", help="what got better and worse between two reports, "
                                          "and which answers changed (from the records.jsonl "
                                          "beside each report)")
    cmp_.add_argument("old", type=Path)
    cmp_.add_argument("new", type=Path)
    gen = sub.add_parser("generate", help="make the seeded inverse-cloze retrieval set")
    gen.add_argument("--corpus", type=Path, required=True)
    gen.add_argument("--n", type=int, default=300)
    gen.add_argument("--seed", type=int, default=13)
    gen.add_argument("--out", type=Path, required=True)
    rsc = sub.add_parser("rescore", help="score a run's records again after a change to "
                                         "scoring or gold resolution; rewrites its report "
                                         "(LLM-judge figures are dropped)")
    rsc.add_argument("run", type=Path, help="an eval output folder (records.jsonl, report.json)")
    rsc.add_argument("--dataset", type=Path, required=True)
    rsc.add_argument("--corpus", type=Path, required=True)
    rsc.add_argument("--data-dir", type=Path)
    rsc.add_argument("--collection")
    spl = sub.add_parser("split", help="seeded dev/test halves of a dataset, by type")
    spl.add_argument("dataset", type=Path)
    spl.add_argument("--seed", type=int, default=13)
    spl.add_argument("--dev", type=Path, required=True, help="where the dev half goes")
    spl.add_argument("--test", type=Path, required=True, help="where the test half goes")
    return parser


def configure_logging(verbose: bool) -> None:
    """Diagnostics go to stderr through `logging`: warnings always, our own debug
    records with -v (tables, summaries and `error:` lines are printed, not logged)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if verbose:
        for name in ("eval", "ingest", "rag"):
            logging.getLogger(name).setLevel(logging.DEBUG)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(getattr(args, "verbose", False))
    return exit_code(lambda: run_command(args))


def run_command(args: argparse.Namespace) -> int:
    try:
        if args.command == "compare":
            old = json.loads(args.old.read_text())
            new = json.loads(args.new.read_text())
            print(report.compare(old, new))
            records = report.read_records(args.old), report.read_records(args.new)
            if records[0] is not None and records[1] is not None:
                print(report.compare_answers(*records))
            return 0
        if args.command == "rescore":
            return cmd_rescore(args)
        if args.command == "split":
            dev, test = qa.split(qa.load(args.dataset), args.seed)
            qa.write(dev, args.dev)
            qa.write(test, args.test)
            print(f"wrote {len(dev)} questions to {args.dev}, {len(test)} to {args.test}")
            return 0
        if args.command == "generate":
            items = qa.generate_cloze(args.corpus, args.n, args.seed)
            qa.write(items, args.out)
            print(f"wrote {len(items)} questions to {args.out}")
            return 0
        return cmd_run(args)
    except json.JSONDecodeError as exc:  # a report or history file that is not JSON
        raise UsageError(f"not JSON: {exc}") from None


def evaluate(items: list[qa.QAItem], corpus: Path, config_names: list[str],
             settings: Any, *, do_ingest: bool = True, top_k: int = 10,
             progress: bool = True, left_out: bool = False
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Ingest (or reuse) the corpus, run every configuration, score. Returns the report
    and the records; used by the CLI and by the CI gate alike. `left_out`: the
    answerable questions are asked with their gold articles left out of the search
    (`runner.left_out`), as unanswerable ones."""
    from eval.judge import judge
    from rag.answer.engine import Engine

    store = runner.prepare_store(settings, corpus, do_ingest, progress)
    engine = Engine.from_settings(settings, store=store)
    configs = [runner.CONFIGS[name] for name in config_names]
    filters = None
    if left_out:
        items, filters = runner.left_out(items, store, corpus)
        if not items:
            raise UsageError("no answerable question to leave its article out of")
    records = runner.run(items, engine, configs, top_k=top_k, progress=progress,
                         filters=filters)
    golds = scoring.resolve_gold(items, store, corpus)
    missing = [i.id for i in items if i.answerable and not golds[i.id].article_ids]
    if missing:
        raise UsageError(f"gold articles not in the store for {len(missing)} question(s), "
                         f"e.g. {missing[:3]}: is --corpus the folder `source` is relative "
                         "to, or the corpus holding its URLs?")
    judged, judge_note = judge(items, records, settings, store, progress)
    result = {
        "dataset": "",
        "corpus": str(corpus),
        "questions": len(items),
        "answerable": sum(1 for i in items if i.answerable),
        "top_k": top_k,
        "reader": engine.extractive.reader.name,  # `auto` resolves to one or the other
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "judge": judge_note,
        "configs": scoring.aggregate(items, records, golds, judged),
    }
    return result, records


def cmd_run(args: argparse.Namespace) -> int:
    items = qa.load(args.dataset)
    if args.split:
        items = qa.select_split(items, args.split)
    items = items[: args.limit]
    settings = runner.eval_settings(settings_from_args(), args.corpus, args.data_dir,
                                    args.collection)
    names = args.config or runner.default_configs(settings)
    if "llm" in names and "llm" not in runner.default_configs(settings):
        from rag.local_model.runtime import LocalModelError, local_llm

        try:  # no endpoint: the local model writes the answers (`make setup` installs it)
            local_llm(settings)
        except LocalModelError as exc:
            print("error: --config llm needs an LLM (RAG_LLM_MODEL and OPENAI_BASE_URL or "
                  f"OPENAI_API_KEY) or the local model ({exc})", file=sys.stderr)
            return 1
    out = args.out or PROJECT_ROOT / "eval" / "out" / datetime.now().strftime("%Y%m%d-%H%M%S")
    result, records = evaluate(items, args.corpus, names, settings,
                               do_ingest=not args.no_ingest, top_k=args.top_k,
                               progress=not args.quiet, left_out=args.left_out)
    result["dataset"] = str(args.dataset)
    if args.split:
        result["split"] = args.split
    if args.left_out:
        result["left_out"] = True
    out.mkdir(parents=True, exist_ok=True)
    with (out / "records.jsonl").open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    report.write(out, result)
    print(report.table(result["configs"], result.get("judge")))
    print(f"\nwrote {out}/records.jsonl, report.json, report.md, report.png")
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from rag.store.articles import ArticleStore

    items = qa.load(args.dataset)
    records = report.read_records(args.run / "report.json")
    if records is None:
        raise UsageError(f"no records.jsonl in {args.run}")
    settings = runner.eval_settings(settings_from_args(), args.corpus, args.data_dir,
                                    args.collection)
    golds = scoring.resolve_gold(items, ArticleStore(settings), args.corpus)
    result = json.loads((args.run / "report.json").read_text())
    result["configs"] = scoring.aggregate(items, records, golds, None)
    report.write(args.run, result)
    print(report.table(result["configs"], result.get("judge")))
    return 0


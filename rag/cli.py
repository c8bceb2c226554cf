"""`python -m rag ask "QUESTION"`: the answer with its citations, as text or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from rag.settings import Settings, get_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rag",
                                     description="Ask questions of the ingested articles.")
    sub = parser.add_subparsers(dest="command", required=True)
    ask = sub.add_parser("ask", help="answer a question with citations")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.add_argument("--mode", choices=["auto", "extractive", "llm"],
                     help="answerer (default: RAG_ANSWER_MODE or auto = LLM when configured)")
    ask.add_argument("--retrieval", choices=["hybrid", "dense", "bm25"],
                     help="retrieval mode (default: hybrid)")
    ask.add_argument("--top-k", type=int, help="passages to retrieve (default: 5)")
    ask.add_argument("--data-dir", help="store folder (default: RAG_DATA_DIR or ./data)")
    ask.add_argument("--collection", help="collection name (default: articles)")
    ask.add_argument("--history", help="JSON file of earlier turns: "
                                       '[{"role": "user"|"assistant", "content": "..."}]')
    ask.add_argument("--article", action="append", default=[], metavar="ID",
                     help="only these articles (repeatable)")
    ask.add_argument("--outlet", action="append", default=[], metavar="NAME",
                     help="only these outlets (repeatable)")
    ask.add_argument("--since", type=date.fromisoformat, metavar="YYYY-MM-DD",
                     help="only articles published on or after")
    ask.add_argument("--until", type=date.fromisoformat, metavar="YYYY-MM-DD",
                     help="only articles published on or before")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    update: dict[str, Any] = {}
    if args.data_dir:
        update["data_dir"] = Path(args.data_dir).expanduser().resolve()
    if args.collection:
        update["collection"] = args.collection
    if args.top_k:
        update["top_k"] = args.top_k
    base = get_settings()
    return Settings.model_validate({**base.model_dump(), **update}) if update else base


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    from rag.embeddings import EmbeddingConfigError
    from rag.engine import Engine
    from rag.retrieval import Filters
    from rag.store import StoreError

    try:
        settings = _settings(args)
        history = json.loads(Path(args.history).read_text()) if args.history else None
        engine = Engine(settings)
        if not engine.store.exists or engine.store.chunks.count() == 0:
            print(f"error: {engine.store.empty_message()}", file=sys.stderr)
            return 1
        filters = Filters(article_ids=args.article, outlets=args.outlet,
                          date_from=args.since, date_to=args.until)
        result = None
        for event in engine.stream(args.question, history=history, filters=filters,
                                   mode=args.mode, retrieval=args.retrieval):
            if isinstance(event, str):
                if not args.json:
                    print(event, end="", flush=True)
            else:
                result = event
    except ValidationError as exc:
        print(f"error: invalid setting: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 1
    except (StoreError, EmbeddingConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    assert result is not None
    if result.notice:
        print(f"note: {result.notice}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
        return 0
    print()
    if result.mode == "llm":  # the streamed text had the model's numbering
        print(f"\n{result.answer}")
    flagged = [s for s in result.sentences if not s.supported]
    if flagged and not result.refused:
        print("\nUnsupported by the cited passages:")
        for s in flagged:
            print(f"  ! {s.text}")
    if result.citations:
        print("\nSources:")
        for c in result.citations:
            where = c.url or c.path or ""
            print(f"  [{c.n}] {c.title} ({c.published or 'undated'}) {where} "
                  f"chars {c.start}-{c.end}\n      \"{c.quote}\"")
    return 0

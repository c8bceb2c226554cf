"""`python -m rag ask "QUESTION"`: the answer with its citations, as text or JSON.
`python -m rag token add|list|revoke`: the OpenAI-compatible API's tokens (web.tokens).
`python -m rag mcp`: the library as an MCP server over stdio, for desktop clients (web.mcp)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import date
from pathlib import Path
from typing import TextIO

from rag.errors import UsageError, exit_code
from rag.settings import Settings, settings_from_args
from rag.types import AnswerMode, RetrievalMode, choices


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rag",
                                     description="Ask questions of the ingested articles.")
    sub = parser.add_subparsers(dest="command", required=True)
    ask = sub.add_parser("ask", help="answer a question with citations")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.add_argument("--mode", choices=choices(AnswerMode),
                     help="answerer (default: RAG_ANSWER_MODE or auto = LLM when configured)")
    ask.add_argument("--retrieval", choices=choices(RetrievalMode),
                     help="retrieval mode (default: RAG_RETRIEVAL_MODE or hybrid)")
    ask.add_argument("--top-k", type=int, help="passages to retrieve (default: RAG_TOP_K or 8)")
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
    ask.add_argument("--as-of", type=date.fromisoformat, metavar="YYYY-MM-DD",
                     help="answer as if today were this day: later articles are left out, "
                          "and 'last week' or 'in March' are read from it")
    ask.add_argument("--no-date-filter", action="store_true",
                     help="don't narrow the search to dates named in the question")

    token = sub.add_parser("token", help="issue, list or revoke the API's tokens")
    token.add_argument("--data-dir", help="store folder (default: RAG_DATA_DIR or ./data)")
    verbs = token.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add", help="issue a token to a user (printed once)")
    add.add_argument("name", help="the user (as named in RAG_AUTH, or an API-only user)")
    add.add_argument("--role", choices=["reader", "editor"],
                     help="default: the user's role in RAG_AUTH, else reader")
    verbs.add_parser("list", help="the tokens issued (never the tokens themselves)")
    revoke = verbs.add_parser("revoke", help="revoke one token (its id) or a user's all")
    revoke.add_argument("who", help="a token id or a user name")

    mcp = sub.add_parser("mcp", help="serve the library to an MCP client over stdio "
                                     "(Claude Desktop, IDE agents); no token: the local user")
    mcp.add_argument("--data-dir", help="store folder (default: RAG_DATA_DIR or ./data)")
    mcp.add_argument("--collection", help="collection name (default: articles)")
    return parser


def mcp_command(args: argparse.Namespace) -> int:
    """Serve MCP on stdin/stdout until the client closes them; logs go to stderr."""
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def run() -> int:
        settings = settings_from_args(data_dir=args.data_dir, collection=args.collection)
        from web.mcp import serve_stdio
        from web.service import NewsApp

        with contextlib.suppress(KeyboardInterrupt):  # a client's way of ending stdio
            serve_stdio(NewsApp(settings))
        return 0

    return exit_code(run)


def token_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Changes the token file; what login would make of it goes to stderr."""
    out = out or sys.stdout
    return exit_code(lambda: _change_tokens(args, out))


def _change_tokens(args: argparse.Namespace, out: TextIO) -> int:
    from web.auth import DEFAULT_ROLE, load_users
    from web.tokens import TokenStore, tokens_path

    settings = settings_from_args(data_dir=args.data_dir)
    store = TokenStore(tokens_path(settings))
    if args.verb == "add":
        users = load_users(settings.auth)
        user = (users or {}).get(args.name.strip())
        entry, secret = store.add(args.name, args.role or (user.role if user else DEFAULT_ROLE))
        print(secret, file=out)
        print(f"token {entry.id} for {entry.name} ({entry.role}) saved in {store.path}; "
              "it is shown only now", file=sys.stderr)
        if users is None:
            print("note: login is off (RAG_AUTH is unset), so the API asks for no token "
                  "until it is set", file=sys.stderr)
        elif user is None:
            print(f"note: {entry.name} is not in RAG_AUTH: an API-only user",
                  file=sys.stderr)
    elif args.verb == "list":
        tokens = store.load()
        for t in tokens:
            print(f"{t.id}  {t.name}  {t.role}  issued {t.created}", file=out)
        if not tokens:
            print(f"no tokens in {store.path}", file=sys.stderr)
    else:
        for t in store.revoke(args.who):
            print(f"revoked {t.id} ({t.name})", file=out)
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    return settings_from_args(data_dir=args.data_dir, collection=args.collection,
                              top_k=args.top_k or None)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "token":
        return token_command(args)
    if args.command == "mcp":
        return mcp_command(args)
    from rag.store.connection import as_store_error

    def translate(exc: Exception) -> str | None:  # Chroma failing underneath: one line
        line = as_store_error(exc, _settings(args))
        return None if line is None else str(line)

    return exit_code(lambda: ask_command(args), translate=translate)


def ask_command(args: argparse.Namespace) -> int:
    """The answer as it is written, then its notes, flagged sentences and sources (or
    the whole as JSON)."""
    from rag.answer.engine import Engine
    from rag.answer.request import Ask
    from rag.answer.retrieve import Filters

    settings = _settings(args)
    try:
        history = json.loads(Path(args.history).read_text()) if args.history else None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--history {args.history}: not JSON ({exc})") from None
    engine = Engine.from_settings(settings)
    filters = Filters(article_ids=args.article, outlets=args.outlet,
                      date_from=args.since, date_to=args.until)
    stream = engine.stream(Ask(args.question, history=history, filters=filters,
                               mode=args.mode, retrieval=args.retrieval, as_of=args.as_of,
                               dates_narrow=not args.no_date_filter, checked=True))
    for delta in stream:  # an empty library: EmptyLibrary, before any text
        if not args.json:
            print(delta, end="", flush=True)
    result = stream.result
    if not args.json:
        print(flush=True)  # the answer's line ends before any note: notes have their own
    if result.notice:
        print(f"note: {result.notice}", file=sys.stderr)
    if result.date_filter is not None:
        f = result.date_filter
        print(f"note: searched only passages about {f.text} (from “{f.phrase}”, read "
              f"{f.anchor_note}); --no-date-filter searches all dates", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
        return 0
    if result.clarify:
        print("\nAsk again about one of them, e.g.:")
        for c in result.clarify:
            print(f"  {c.question}")
        return 0
    flagged = [s for s in result.sentences if not s.supported]
    if flagged and not result.refused:
        print("\nUnsupported by the cited passages:")
        for s in flagged:
            print(f"  ! {s.text}")
    if result.citations:
        print("\nSources:")
        for c in result.citations:
            where = c.url or c.path or ""
            when = f"; about {c.event_text}" if c.event_text else ""
            print(f"  [{c.n}] {c.title} ({c.published or 'undated'}{when}) {where} "
                  f"chars {c.start}-{c.end}\n      \"{c.quote}\"")
            if c.also_in:
                print(f"      also in {len(c.also_in)} other article(s): " + "; ".join(
                    f"{r.title} ({r.outlet or 'no outlet'}, {r.published or 'undated'})"
                    for r in c.also_in))
    return 0

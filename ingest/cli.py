"""`python -m ingest`: add sources, list, remove, stats, drop."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ingest.fetch import FetchPolicy
from ingest.pipeline import ingest
from ingest.results import Result
from rag.errors import exit_code
from rag.settings import Settings, settings_from_args

COMMANDS = ("add", "feed", "watch", "list", "remove", "stats", "drop", "check")

USAGE = """python -m ingest [OPTIONS] SOURCE...       add files, folders, URLs or - (stdin)
       python -m ingest [OPTIONS] feed URL...     RSS, Atom, JSON Feed or sitemap: new entries
       python -m ingest [OPTIONS] watch [FILE]    follow the feeds of a feeds file
       python -m ingest [OPTIONS] list [--json]   the stored articles
       python -m ingest [OPTIONS] remove REF...   by id, URL or file path
       python -m ingest [OPTIONS] stats [--json]  counts, outlets, dates, model
       python -m ingest [OPTIONS] drop --yes      delete the whole collection
       python -m ingest [OPTIONS] check [--repair] [--json]
                                                  verify every chunk; fix what is wrong"""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given before the command must survive the subparser's defaults.
    common.add_argument("--data-dir", default=argparse.SUPPRESS,
                        help="store folder (default: RAG_DATA_DIR or the project's data/)")
    common.add_argument("--collection", default=argparse.SUPPRESS,
                        help="collection name (default: RAG_COLLECTION or 'articles')")
    common.add_argument("--wait", type=float, default=argparse.SUPPRESS, metavar="SECONDS",
                        help="while another process writes the store, wait this long, then "
                             "give up (default: RAG_WRITE_WAIT or 300; 0: refuse at once)")
    parser = argparse.ArgumentParser(
        prog="python -m ingest", usage=USAGE, parents=[common],
        description="Ingest news articles into the store, and manage what is stored.",
        epilog="A SOURCE named like a command (e.g. a file called 'list') can be given as ./list.",
    )
    sub = parser.add_subparsers(dest="command")
    add = sub.add_parser("add", parents=[common], help="add sources (the default command)")
    add.add_argument("sources", nargs="+", metavar="SOURCE")
    add.add_argument("--outlet", help="outlet/source name for articles that do not say")
    add.add_argument("--format", choices=["txt", "md", "html", "pdf", "jsonl"],
                     help="read every source as this format (default: by extension or content)")
    add.add_argument("--max-file-mb", type=float,
                     help="a larger source fails with the reason (default: RAG_MAX_FILE_MB "
                          "or 20)")
    add.add_argument("--allow-private", action="store_true",
                     help="let URLs reach private, loopback and other non-public addresses "
                          "(default: refused; RAG_FETCH_ALLOW opts in chosen networks)")
    add.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add.add_argument("-v", "--verbose", action="store_true",
                     help="a line for every article, and diagnostics (why a URL was refused, "
                          "tracebacks of unexpected errors) on stderr")
    feed = sub.add_parser("feed", parents=[common],
                          help="add the new and changed entries of feeds and sitemaps")
    feed.add_argument("urls", nargs="+", metavar="URL",
                      help="an RSS, Atom or JSON Feed, a sitemap, a sitemap index or a "
                           "Google News sitemap")
    feed.add_argument("--outlet", help="outlet name for entries whose page does not say "
                      "(in place of the feed's title)")
    feed.add_argument("--max-entries", type=int, default=None, metavar="N",
                      help="entries read per feed, newest first (default 200)")
    feed.add_argument("--allow-private", action="store_true",
                      help="let the feeds and pages be on private or loopback addresses")
    feed.add_argument("-v", "--verbose", action="store_true",
                      help="a line for every article, and diagnostics on stderr")
    watch = sub.add_parser("watch", parents=[common],
                           help="poll the feeds of a feeds file until stopped (Ctrl-C)")
    watch.add_argument("file", nargs="?", help="one feed a line: URL [interval] [outlet] "
                       "(default: RAG_FEEDS_FILE or <data dir>/feeds/feeds.txt)")
    watch.add_argument("--once", action="store_true", help="read each feed once, then stop")
    watch.add_argument("--allow-private", action="store_true",
                       help="let the feeds and pages be on private or loopback addresses")
    for name, helptext in (("list", "list stored articles"), ("stats", "store statistics")):
        p = sub.add_parser(name, parents=[common], help=helptext)
        p.add_argument("--json", action="store_true", help="machine-readable output")
    rm = sub.add_parser("remove", parents=[common], help="remove articles and their chunks")
    rm.add_argument("refs", nargs="+", metavar="REF", help="article id, URL or file path")
    drop = sub.add_parser("drop", parents=[common], help="delete the whole collection")
    drop.add_argument("--yes", action="store_true", help="confirm")
    chk = sub.add_parser("check", parents=[common],
                         help="verify that every chunk is findable, counts agree, nothing is "
                              "half-written and the keyword index is current")
    chk.add_argument("--repair", action="store_true",
                     help="re-index lost chunks, delete orphans, roll back half-written "
                          "articles, rebuild the keyword index")
    chk.add_argument("--json", action="store_true", help="machine-readable output")
    chk.add_argument("--sample", type=_positive, metavar="N",
                     help="look up N random chunks' vectors, not every one (a large store: "
                          "each look-up is a nearest-neighbour query); the other checks "
                          "still read every chunk")
    return parser


def _positive(value: str) -> int:
    """An argparse type: a whole number above 0."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number above 0")
    return int(value)


def _with_default_command(argv: list[str]) -> list[str]:
    """`python -m ingest FILE` means `add FILE`: insert `add` before the first positional."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--data-dir", "--collection", "--wait"):
            i += 2
            continue
        if arg.startswith("-") and arg != "-":
            if arg in ("-h", "--help"):
                return argv
            i += 1
            continue
        return argv if arg in COMMANDS else ["add", *argv]
    return argv


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings with the options given on top (an option left out, or
    given empty, keeps the environment's value); `SettingsError` names a bad one."""
    return settings_from_args(
        data_dir=getattr(args, "data_dir", None),
        collection=getattr(args, "collection", None),
        max_file_mb=getattr(args, "max_file_mb", None) or None,
        fetch_allow_private=True if getattr(args, "allow_private", False) else None,
        write_wait=getattr(args, "wait", None),
    )


def say_waiting(line: str) -> None:
    """Told once when another process holds the store's writer lock."""
    print(line, file=sys.stderr, flush=True)


def configure_logging(verbose: bool) -> None:
    """Diagnostics go to stderr through `logging`: warnings always, our own debug
    records with -v (the report lines and summary are printed, not logged)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if verbose:
        for name in ("ingest", "rag"):
            logging.getLogger(name).setLevel(logging.DEBUG)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_with_default_command(list(sys.argv[1:] if argv is None else argv)))
    if not args.command:
        parser.print_usage(sys.stderr)
        return 2
    configure_logging(getattr(args, "verbose", False))
    from rag.store.articles import ArticleStore
    from rag.store.connection import as_store_error

    def run() -> int:
        settings = settings_from(args)
        # Only writing needs the model to match; listing or dropping a mismatched one must work.
        store = ArticleStore(settings,
                             check_model=args.command in ("add", "feed", "watch", "check"))
        return COMMAND_FUNCS[args.command](args, store, settings)

    def translate(exc: Exception) -> str | None:  # Chroma failing underneath: one line
        line = as_store_error(exc, settings_from(args))
        return None if line is None else str(line)

    return exit_code(run, translate=translate,
                     interrupted="interrupted; run the same command again to finish")


def cmd_add(args: argparse.Namespace, store: Any, settings: Settings) -> int:
    def show(result: Result) -> None:
        if args.verbose or result.status == "failed":
            from tqdm import tqdm

            tqdm.write(result.line(), file=sys.stderr if result.status == "failed" else sys.stdout)
            sys.stdout.flush()

    fmt = f".{args.format}" if args.format else None
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():  # log lines above the progress bar, not through it
        report = ingest(args.sources, store, settings, outlet=args.outlet, fmt=fmt,
                        progress=not args.quiet and sys.stderr.isatty() or args.verbose,
                        on_result=show, on_wait=say_waiting)
    print(report.summary())
    return 1 if report.failed else 0


def cmd_feed(args: argparse.Namespace, store: Any, settings: Settings) -> int:
    """A line per feed, a line per new or updated article (every one with -v) and per
    failure, then the summary. Exit 1 when a feed or an entry failed."""
    from ingest.feeds import MAX_ENTRIES, read_feeds

    policy = FetchPolicy.from_settings(settings)
    failed_feeds = []

    def on_feed(report: Any) -> None:  # noqa: ANN401
        print(report.line(), file=sys.stderr if report.error else sys.stdout, flush=True)
        if report.error:
            failed_feeds.append(report)

    stream = read_feeds(args.urls, store, settings, outlet=args.outlet, policy=policy,
                        max_entries=args.max_entries or MAX_ENTRIES, on_feed=on_feed)
    try:
        for result in stream:
            if args.verbose or result.status != "unchanged":
                print(result.line(), file=sys.stderr if result.status == "failed"
                      else sys.stdout, flush=True)
    finally:
        stream.close()
    report = stream.result
    print(report.summary())
    return 1 if report.failed or failed_feeds else 0


def cmd_watch(args: argparse.Namespace, store: Any, settings: Settings) -> int:
    """Until Ctrl-C or SIGTERM, which end it between entries (exit 0)."""
    import signal
    import threading

    from ingest.watch import Watcher, feeds_path, read_feeds_file

    path = Path(args.file).expanduser() if args.file else feeds_path(settings)
    read = read_feeds_file(path)
    for problem in read.problems:  # the watcher says them again only when they change
        print(f"feeds file {path}: {problem}", file=sys.stderr)
    feeds = read.feeds
    if not feeds:
        print(f"error: {path} names no feeds (one a line: URL [interval] [outlet])",
              file=sys.stderr)
        return 1
    stop = threading.Event()
    watcher = Watcher(store, settings, path, stop, say=lambda line: print(line, flush=True))
    watcher.problems = read.problems

    def stopping(signum: int, frame: object) -> None:
        print(f"stopping ({signal.Signals(signum).name}) after the current entry…",
              file=sys.stderr, flush=True)
        stop.set()
        watcher.wake.set()  # out of the wait between rounds at once

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stopping)
    print(f"watching {len(feeds)} feed(s) from {path}; Ctrl-C stops", file=sys.stderr,
          flush=True)
    watcher.run(once=args.once)
    return 0


def cmd_list(args: argparse.Namespace, store: Any, settings: Settings) -> int:
    articles = store.list_articles()
    if args.json:
        print(json.dumps([a.to_json() for a in articles], ensure_ascii=False, indent=2))
        return 0
    if not articles:
        print(store.empty_message())
        return 0
    print(f"{'ID':<16}  {'PUBLISHED':<10}  {'SOURCE':<18}  {'CHUNKS':>6}  TITLE")
    for a in articles:
        source = a.outlet or (a.url and a.url.split("/")[2]) or (a.paths[0].rsplit("/", 2)[-2]
                                                                  if a.paths else "")
        print(f"{a.id:<16}  {a.published.isoformat() if a.published else '-':<10}  "
              f"{source[:18]:<18}  {a.chunks:>6}  {a.title[:80]}"
              + ("  (feed summary only)" if a.feed_summary else ""))
    print(f"{len(articles)} article(s)")
    return 0


def cmd_remove(args: argparse.Namespace, store: Any, settings: Settings) -> int:
    status = 0
    with store.writing("remove", settings.write_wait, say_waiting):
        for ref in args.refs:
            articles = store.resolve_all(ref)
            if not articles:
                print(f"error: no stored article matches {ref!r} (give an id from `list`, "
                      "a URL or a file path)", file=sys.stderr)
                status = 1
            for article in articles:
                store.remove_article(article.id)
                print(f"removed {article.id}  {article.title[:70]} ({article.chunks} chunks)")
    return status


def cmd_stats(args: argparse.Namespace, store: Any, settings: Settings) -> int:
    articles = store.list_articles()
    dates = sorted(a.published for a in articles if a.published)
    stats = {
        "collection": store.name,
        "location": store.location,
        "embed_model": store.spec.name,
        "articles": len(articles),
        "chunks": store.chunks.count() if store.exists else 0,
        "with_date": len(dates),
        "earliest": dates[0].isoformat() if dates else None,
        "latest": dates[-1].isoformat() if dates else None,
        "outlets": dict(Counter(a.outlet or "(none)" for a in articles).most_common()),
        **_story_stats(articles),
    }
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    for key, value in stats.items():
        if key == "outlets":
            value = ", ".join(f"{k} ({v})" for k, v in value.items()) or "-"
        print(f"{key:<12} {value if value is not None else '-'}")
    return 0


def _story_stats(articles: list[Any]) -> dict[str, Any]:
    """Stories: groups of copies of one text (wire copies, versions), from ingest."""
    sizes = Counter(a.story or a.id for a in articles)
    groups = [n for n in sizes.values() if n > 1]
    return {"stories": len(sizes), "story_groups": len(groups),
            "articles_in_groups": sum(groups), "largest_group": max(groups, default=1)}


def cmd_drop(args: argparse.Namespace, store: Any, settings: Settings) -> int:
    if not args.yes:
        print(f"this deletes every article in {store.name!r} at {store.location}; "
              "add --yes to confirm", file=sys.stderr)
        return 1
    with store.writing("drop", settings.write_wait, say_waiting, damaged_ok=True):
        store.drop()
    print(f"dropped collection {store.name!r}")
    return 0


def cmd_check(args: argparse.Namespace, store: Any, settings: Settings) -> int:
    from rag.store.health import check_store, repair

    if args.repair:  # looked at under the lock, so what is repaired is what was found
        with store.writing("repair", settings.write_wait, say_waiting):
            health = check_store(store, sample=args.sample)
            if not health.ok:
                health = repair(store, health)
    else:
        health = check_store(store, sample=args.sample)
    if args.json:
        print(json.dumps(health.to_json(), indent=2))
    else:
        print(health.report())
    return 0 if health.ok else 1


COMMAND_FUNCS = {"add": cmd_add, "feed": cmd_feed, "watch": cmd_watch, "list": cmd_list,
                 "remove": cmd_remove,
                 "stats": cmd_stats, "drop": cmd_drop, "check": cmd_check}

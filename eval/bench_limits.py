"""Big-input benchmark of the text parser: prints figures, asserts nothing (timings are noisy).

    python -m eval.bench_limits [--sizes 0.4,0.8,1.6,3.2] [--hostile-sizes MB,...] [--no-old]

An uploaded or pasted article can be megabytes long, so parsing must stay linear:
each table times one run per size, side by side in one process, and prints the ratio
between successive sizes (the sizes double, so ≈2 means linear, ≈4 quadratic).

- *Realistic text*: BBC articles (read from ../shared/corpora/bbc, never copied here)
  as a chronology (a date before every sentence or clause, about one per 80
  characters), none of them "on <date>", flowed as one
  hard-wrapped block (a text dump or a one-line paste), so the lead paragraph that
  `parse_text` searches for an "on <date>" is the whole text. `_find_date_old` is the
  quadratic version this replaced, kept only for comparison (skip it with --no-old).
- *Hostile lines*: what an attacker could upload: one long line of unclosed image or
  link markup, and a PDF's text with no paragraph break.
"""

from __future__ import annotations

import argparse
import re
import textwrap
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from eval.bench_ingest import BBC_CORPUS
from ingest import textparse
from ingest.formats import _unwrap_pdf_lines

_DATES = [  # none reads "on <date>": find_date(after_on=True) must look at every one
    "by 31 December 2004", "from 14 February 2005:", "since March 3, 2005,", "ref 2005-01-17:",
    "until 2 April 2005", "as of 1st of May 2005,",
]
_ON_DATE = re.compile(r"\b[Oo]n(\s+(?:\w+day,?\s+)?\d)")  # the corpus's own "on <date>"


def _find_date_old(text: str, after_on: bool = False) -> date | None:
    """OLD, QUADRATIC: `find_date` before the fix, copied here only to compare timings.

    `text[:match.start()]` copies everything before every rejected match.
    """
    best: tuple[int, date] | None = None
    for pattern in textparse._DATE_PATTERNS:
        for match in pattern.finditer(text):
            if after_on and not re.search(r"\bon\s+(\w+day,?\s+)?$",
                                          text[:match.start()][-20:]):
                continue
            found = textparse.match_date(match)
            if found is None:
                continue
            if best is None or match.start() < best[0]:
                best = (match.start(), found)
            break
    return best[1] if best else None


def realistic_text(corpus: Path, size: int) -> str:
    """About `size` characters: a headline, then BBC paragraphs with dates, wrapped at 72."""
    files = sorted(f for f in corpus.rglob("*.txt") if not f.name.lower().startswith("readme"))
    if not files:
        raise SystemExit(f"no articles under {corpus}")
    parts: list[str] = []
    total = i = 0
    while total < size:
        raw = files[i % len(files)].read_bytes().decode("utf-8", "replace")
        body = _ON_DATE.sub(r"by\1", " ".join(raw.split("\n")[1:]))  # drop the headline
        for j, clause in enumerate(re.split(r"(?<=[.!?,;])\s+", body)):
            if clause:  # a chronology: a date before every sentence or clause
                piece = f"{_DATES[(i + j) % len(_DATES)]} {clause}"
                parts.append(piece)
                total += len(piece) + 1
        i += 1
    body = textwrap.fill(" ".join(parts), width=72)[:size]
    return "Long report on the year's figures\n\n" + body


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _table(title: str, sizes: list[float], columns: dict[str, Callable[[int], float]]) -> None:
    print(f"\n{title}")
    header = f"{'MB':>6}" + "".join(f"  {name:>22} {'ratio':>6}" for name in columns)
    print(header)
    last: dict[str, float] = {}
    for mb in sizes:
        row = f"{mb:>6.2f}"
        for name, run in columns.items():
            seconds = run(int(mb * 1_000_000))
            ratio = f"{seconds / last[name]:.1f}" if last.get(name) else "-"
            last[name] = seconds
            row += f"  {seconds:>21.3f}s {ratio:>6}"
        print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.bench_limits")
    parser.add_argument("--sizes", default="0.4,0.8,1.6,3.2", help="MB of realistic text")
    parser.add_argument("--hostile-sizes", default=None,
                        help="MB of hostile lines (default: --sizes)")
    parser.add_argument("--no-old", action="store_true", help="skip the quadratic old version")
    parser.add_argument("--corpus", type=Path,
                        default=BBC_CORPUS)
    args = parser.parse_args()
    sizes = [float(x) for x in args.sizes.split(",")]
    hostile = [float(x) for x in (args.hostile_sizes or args.sizes).split(",")]
    texts = {int(mb * 1_000_000): realistic_text(args.corpus, int(mb * 1_000_000))
             for mb in sizes}
    found = textparse.find_date(texts[min(texts)], after_on=True)
    print(f"realistic text: {len(_DATES)} kinds of date, find_date(after_on=True) -> {found}")

    columns: dict[str, Callable[[int], float]] = {
        "find_date(after_on)": lambda n: _timed(
            lambda: textparse.find_date(texts[n], after_on=True)),
    }
    if not args.no_old:
        columns["_find_date_old (OLD)"] = lambda n: _timed(
            lambda: _find_date_old(texts[n], after_on=True))
    columns["parse_text"] = lambda n: _timed(lambda: textparse.parse_text(texts[n]))
    _table("Realistic text, seconds (ratio to the previous size; ≈2 = linear)", sizes, columns)

    _table("Hostile lines, seconds", hostile, {
        "clean_line '![a' * n": lambda n: _timed(
            lambda: textparse.clean_line("x " + "![a" * (n // 3))),
        "clean_line '[a](' * n": lambda n: _timed(
            lambda: textparse.clean_line("x " + "[a](" * (n // 4), markdown=True)),
        "pdf unwrap, no break": lambda n: _timed(
            lambda: _unwrap_pdf_lines("\n".join(["word " * 15] * (n // 76)))),
    })


if __name__ == "__main__":
    main()

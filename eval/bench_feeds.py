"""Feed benchmark: articles per minute from a local feed, with the pages' fetch and the
embedding shown apart. Prints figures, asserts nothing.

    python -m eval.bench_feeds [--entries 500] [--corpus ../shared/corpora/bbc]

A loopback server serves an RSS feed of `--entries` items and one HTML page per item,
made from the BBC corpus's articles (headline and paragraphs), and the feed is read
into a new store in a temporary folder (`ingest.feeds.read_feeds`, as `python -m
ingest feed` reads it). Timed in the run: the whole read; the embedding calls (the
main thread, one after another); the page fetches with their extraction (two at a
time, as in a real run, beside the embedding).
"""

from __future__ import annotations

import argparse
import html
import http.server
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ingest import feeds
from rag.settings import PROJECT_ROOT, Settings
from rag.store.articles import ArticleStore

PAGE = ("<!doctype html><html><head><title>{title}</title>"
        '<meta property="article:published_time" content="2005-03-{day:02d}"></head>'
        "<body><nav>Home | News</nav><article><h1>{title}</h1>{paras}</article>"
        "<footer>Benchmark pages</footer></body></html>")


def pages(corpus: Path, n: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(corpus.rglob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        title, _, body = text.partition("\n")
        paras = "".join(f"<p>{html.escape(p.strip())}</p>" for p in body.split("\n")
                        if p.strip())
        out[f"a{len(out)}"] = PAGE.format(title=html.escape(title.strip()), paras=paras,
                                          day=1 + len(out) % 28)
        if len(out) == n:
            break
    return out


def rss(base: str, served: dict[str, str]) -> str:
    items = "".join(
        f"<item><title>Item {slug}</title><link>{base}/{slug}.html</link><guid>{slug}</guid>"
        f"<pubDate>Tue, {1 + k % 28:02d} Mar 2005 10:00:00 GMT</pubDate></item>"
        for k, slug in enumerate(served))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Bench News</title>'
            f"{items}</channel></rss>")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.bench_feeds",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=500)
    parser.add_argument("--corpus", type=Path,
                        default=PROJECT_ROOT.parent / "shared" / "corpora" / "bbc")
    args = parser.parse_args(argv)
    served = pages(args.corpus, args.entries)
    body: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:  # noqa: ANN401
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            name = self.path.strip("/")
            data = body["feed"] if name == "feed.xml" else \
                served.get(name.removesuffix(".html"), "").encode()
            self.send_response(200 if data else 404)
            self.send_header("Content-Type", "application/xml" if name == "feed.xml"
                             else "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    body["feed"] = rss(base, served).encode()
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    timed: dict[str, list[float]] = {"embed": [], "page": []}
    real_page, real_embed = feeds._page, ArticleStore.embed

    def page(*a: Any) -> Any:  # noqa: ANN401
        t0 = time.perf_counter()
        try:
            return real_page(*a)
        finally:
            timed["page"].append(time.perf_counter() - t0)

    def embed(self: ArticleStore, texts: list[str]) -> Any:  # noqa: ANN401
        t0 = time.perf_counter()
        try:
            return real_embed(self, texts)
        finally:
            timed["embed"].append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), collection="bench-feeds",
                            fetch_allow="127.0.0.1")
        store = ArticleStore(settings)
        store.embed(["warm the model up"])  # loaded before the clock starts
        feeds._page = page  # type: ignore[assignment]
        ArticleStore.embed = embed  # type: ignore[method-assign]
        try:
            started = time.perf_counter()
            stream = feeds.read_feeds([f"{base}/feed.xml"], store, settings,
                                      max_entries=args.entries)
            for _ in stream:
                pass
            report = stream.result
            total = time.perf_counter() - started
        finally:
            feeds._page, ArticleStore.embed = real_page, real_embed  # type: ignore[assignment]
            httpd.shutdown()
    added = report.count("added")
    embed_s, page_s = sum(timed["embed"]), sum(timed["page"])
    print(f"{added} articles added from a local feed of {len(served)} entries "
          f"({report.count('failed')} failed), {report.chunks_written} chunks")
    print("| step | seconds | share of the run |")
    print("|---|---|---|")
    print(f"| whole read | {total:.1f} | 100% |")
    print(f"| embedding (main thread) | {embed_s:.1f} | {100 * embed_s / total:.0f}% |")
    print(f"| page fetch + extraction (2 workers; sum over pages) | {page_s:.1f} | "
          f"{100 * page_s / total:.0f}% |")
    print(f"| one page, p50 | {statistics.median(timed['page']):.3f} | |")
    print(f"articles per minute: {60 * added / total:.0f} "
          f"(embedding alone would allow {60 * added / max(embed_s, 1e-9):.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

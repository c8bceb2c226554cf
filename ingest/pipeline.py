"""Sources in, one result per article or failed source out: `ingest_stream` and `ingest`.

The sources (files, folders, `.jsonl` lines, URLs; `ingest.sources`) are read one at a
time (`read_source`) and their articles handed to an `Ingestor` (`ingest.ingestor`),
which decides what to write and writes it. A bad source or article fails alone, with a
one-line reason in its `Result` (`ingest.results`); only an unusable store stops a run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterator
from functools import partial

from tqdm import tqdm

from ingest.fetch import FetchPolicy
from ingest.formats import PARSERS, SourceError, iter_jsonl, sniff_format
from ingest.ingestor import Ingestor
from ingest.results import Report, Result, unexpected
from ingest.sources import Expanded, Source, expand, read_bytes
from rag.records import Article, line_ref
from rag.settings import Settings
from rag.store.articles import ArticleStore, StoreError
from rag.store.lock import Waiting
from rag.streams import Streamed

logger = logging.getLogger(__name__)


def read_source(source: Source, settings: Settings, fmt: str | None = None,
                policy: FetchPolicy | None = None) -> list[tuple[str, Article | SourceError]]:
    """A source's articles, each with the label reports use (`file.jsonl:3` for a line).
    `policy`: the run's fetch policy (default: the one `settings` give)."""
    data, content_type, final_url = read_bytes(
        source, settings.max_file_bytes, settings.fetch_timeout,
        policy or FetchPolicy.from_settings(settings),
    )
    suffix = fmt or source.suffix or sniff_format(data, content_type)
    meta: dict[str, object] = {}
    if source.kind == "file":
        meta["path"] = source.ref
    if suffix == ".jsonl":
        items = []
        for number, item in iter_jsonl(data):
            if isinstance(item, Article) and "path" in meta:
                item.path = line_ref(source.ref, number) if not item.url else None
            items.append((f"{source.label}:{number}", item))
        return items
    parse = PARSERS.get(suffix)
    if parse is None:
        raise SourceError(f"unsupported format {suffix!r}")
    if source.kind == "url":
        url = final_url or source.ref
        if suffix in (".html", ".htm"):
            return [(source.label, a) for a in parse(data, url=url, **meta)]
        meta["url"] = url
    if suffix == ".pdf":  # the one parser with limits of its own
        meta.update(max_pages=settings.pdf_max_pages, timeout=settings.pdf_timeout)
    return [(source.label, a) for a in parse(data, **meta)]


def ingest_stream(
    refs: list[str],
    store: ArticleStore,
    settings: Settings,
    *,
    outlet: str | None = None,
    fmt: str | None = None,
    progress: bool = True,
    local: bool = True,
    on_wait: Waiting | None = None,
    pool_chunks: int | None = None,
) -> Streamed[Result, Report]:
    """Add the sources named by `refs`, yielding each result as soon as it is final;
    `.result` is the report. `local=False` (what a web user gave): only http(s) URLs are
    read; a path or `-` fails without the server's files being looked at.

    New articles are embedded in pools, so their results come when a pool is written
    (after the source that filled it, or at the end), always in the order they became
    final. Closing the stream stops between sources: articles already written stay (and
    are indexed for keyword search), those still waiting for a pool are dropped.

    Writes take the store's writer lock a pool at a time, waiting up to
    `settings.write_wait` seconds for another writer (`on_wait` is told once).
    `pool_chunks` (default `ingest.ingestor.FLUSH_CHUNKS`): chunks embedded per pool;
    1 writes each article as soon as it is read (the app's few sources: a result per
    source, so a cancelled job stops at the next one).
    """
    policy = FetchPolicy.from_settings(settings)  # a bad RAG_FETCH_ALLOW fails here, not later
    return Streamed(_ingest(refs, store, settings, policy, outlet, fmt, progress, local,
                            on_wait, pool_chunks))


def ingest(
    refs: list[str],
    store: ArticleStore,
    settings: Settings,
    *,
    outlet: str | None = None,
    fmt: str | None = None,
    progress: bool = True,
    on_result: Callable[[Result], None] | None = None,
    local: bool = True,
    on_wait: Waiting | None = None,
) -> Report:
    """`ingest_stream` run to the end, `on_result` called with each result as it comes."""
    stream = ingest_stream(refs, store, settings, outlet=outlet, fmt=fmt, progress=progress,
                           local=local, on_wait=on_wait)
    try:
        for result in stream:
            if on_result:
                on_result(result)
    finally:
        stream.close()  # `on_result` raised: stop now, not whenever the stream is collected
    return stream.result


def _ingest(refs: list[str], store: ArticleStore, settings: Settings, policy: FetchPolicy,
            outlet: str | None, fmt: str | None, progress: bool, local: bool,
            on_wait: Waiting | None, pool_chunks: int | None = None
            ) -> Generator[Result, None, Report]:
    """The work behind `ingest_stream`: yields results between sources, returns the report."""
    started = time.perf_counter()
    report = Report()
    report.recovered = store.recover(settings.write_wait, on_wait)
    expanded: Expanded = expand(refs, local=local)
    report.skipped = expanded.skipped
    final: list[Result] = []  # final since the last yield

    def done(result: Result) -> None:
        report.results.append(result)
        final.append(result)

    bar: tqdm | None = None
    try:
        for refused in expanded.refused:
            done(Result(refused, "failed", reason="not an http(s) URL"))
        for missing in expanded.missing:
            done(Result(missing, "failed", reason="no such file, folder or URL"))
        yield from _take(final)

        ingestor = Ingestor(store, settings, outlet, on_done=done, on_wait=on_wait,
                            pool_chunks=pool_chunks)
        bar = tqdm(expanded.sources, unit="src", disable=not progress, dynamic_ncols=True,
                   desc="ingesting", leave=True)
        for source in bar:
            yield from _then_results(
                partial(_add_source, ingestor, source, settings, fmt, policy, done), final
            )
            elapsed = max(time.perf_counter() - started, 1e-6)
            chunks_done = report.chunks_written
            bar.set_postfix(chunks=chunks_done, rate=f"{chunks_done / elapsed:.0f}/s",
                            failed=report.count("failed"), refresh=False)
        yield from _then_results(ingestor.flush, final)
    finally:
        # (The keyword index is not rebuilt here: the next search does that, rag.store.keyword.)
        if bar is not None:
            bar.close()
    report.seconds = time.perf_counter() - started
    return report


def _take(final: list[Result]) -> list[Result]:
    """The results collected so far, leaving the list empty for the next ones."""
    taken = final[:]
    final.clear()
    return taken


def _then_results(step: Callable[[], None], final: list[Result]) -> Iterator[Result]:
    """Run `step`, then yield the results it made final: also when it raised part-way
    (the store failed, Ctrl-C), as a consumer saw each of those before the error."""
    try:
        step()
    except BaseException:
        yield from _take(final)
        raise
    yield from _take(final)


def _add_source(ingestor: Ingestor, source: Source, settings: Settings, fmt: str | None,
                policy: FetchPolicy, done: Callable[[Result], None]) -> None:
    """Read one source and hand its articles to `ingestor`; a bad source or article fails
    alone (`done` gets a failed result), only an unusable store stops the run."""
    try:
        items = read_source(source, settings, fmt, policy)
    except SourceError as exc:
        items = [(source.label, exc)]
    except OSError as exc:
        items = [(source.label, SourceError(f"cannot read ({exc.strerror or exc})"))]
    except Exception as exc:  # a library choking on odd input must not sink the batch
        logger.debug("reading %s failed", source.label, exc_info=True)
        items = [(source.label, SourceError(unexpected(exc)))]
    for label, item in items:
        if isinstance(item, SourceError):
            done(Result(label, "failed", reason=str(item)))
            continue
        try:
            ingestor.add(item, label)
        except SourceError as exc:
            done(Result(label, "failed", reason=str(exc)))
        except StoreError:
            raise  # the store itself is unusable: stop, every source would fail
        except Exception as exc:
            logger.debug("adding %s failed", label, exc_info=True)
            done(Result(label, "failed", reason=unexpected(exc)))

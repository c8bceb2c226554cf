"""Sources in, articles and chunks written, one result per article or failed source out.

Identity rules (see `rag.records.article_id_for`): an article with a URL is its
canonical URL; without one it is its normalised text, so the same file under two
paths is one article. A file whose content changed gets a new id; the article its
path used to hold is then replaced (its chunks removed), never left as an orphan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from tqdm import tqdm

from ingest.chunking import chunk_article, embedding_text
from ingest.fetch import FetchPolicy
from ingest.formats import READERS, SourceError, iter_jsonl, sniff_format
from ingest.grouping import story_to_join
from ingest.sources import Expanded, Source, expand, read_bytes
from rag.records import Article, Chunk, StoredArticle, line_ref, plain_title, strip_tracking
from rag.settings import Settings
from rag.store.articles import ArticleStore, StoreError, article_vector
from rag.store.lock import Waiting
from rag.streams import Streamed

logger = logging.getLogger(__name__)
STORY_CANDIDATES = 8  # stored articles nearest in meaning compared for near-duplicates
# Cosine of article vectors below which two articles are not compared word by word:
# copies sit far above it (their texts are mostly the same); most other pairs, below.
STORY_CLOSE = 0.75

STATUSES = ("added", "updated", "unchanged", "failed")


@dataclass
class Result:
    source: str
    status: str  # one of STATUSES
    article_id: str | None = None
    title: str = ""
    chunks: int = 0
    reason: str = ""
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.status == "failed":
            return f"failed     {self.source}: {self.reason}"
        extra = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"{self.status:<10} {self.article_id}  {self.title[:70]}{extra}"


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    recovered: int = 0
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def chunks_written(self) -> int:
        return sum(r.chunks for r in self.results if r.status in ("added", "updated"))

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s}" for s in STATUSES)
        lines = [f"{counts} ({self.chunks_written} chunks written, {self.seconds:.1f} s)"]
        if self.recovered:
            lines.append(f"recovered {self.recovered} article(s) left half-written by an "
                         "interrupted run")
        lines += [f"  {r.source}: {r.reason}" for r in self.failed]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} file(s) in folders:")
            lines += [f"  {s}" for s in self.skipped[:20]]
            if len(self.skipped) > 20:
                lines.append(f"  ... and {len(self.skipped) - 20} more")
        return "\n".join(lines)


# Chunks embedded per model call. Pooling chunks of several articles into one call
# is ~1.6x faster than a call per article (fewer, fuller batches; less padding).
FLUSH_CHUNKS = 64


@dataclass
class _Pending:
    article: Article
    chunks: list[Chunk]
    paths: set[str]
    result: Result
    existed: bool


class Ingestor:
    """Writes articles into a store, keeping a catalogue in memory so each decision is cheap.

    New and changed articles are chunked at once but embedded and written in pools
    (`flush`); `on_done` gets each article's result when it is final.
    """

    def __init__(self, store: ArticleStore, settings: Settings, outlet: str | None = None,
                 on_done: Callable[[Result], None] | None = None,
                 on_wait: Waiting | None = None, pool_chunks: int | None = None) -> None:
        self.store = store
        self.pool_chunks = pool_chunks or FLUSH_CHUNKS
        self.settings = settings
        self.outlet = outlet
        self.on_done = on_done or (lambda result: None)
        self.on_wait = on_wait
        self.pending: dict[str, _Pending] = {}
        self._load_catalogue()

    def _load_catalogue(self) -> None:
        self.catalogue: dict[str, StoredArticle] = {a.id: a for a in self.store.list_articles()}
        self.pages: dict[tuple[str, str], str] = {}  # (outlet, headline) -> a story
        for a in self.catalogue.values():
            self._note_page(a.outlet, a.title, a.story or a.id)
        self.by_path: dict[str, str] = {
            p: a.id for a in self.catalogue.values() for p in a.paths
        }
        self._generation = self.store.conn.seen

    def _note_page(self, outlet: str | None, title: str, story: str) -> None:
        if outlet and plain_title(title):
            self.pages.setdefault((outlet.casefold(), plain_title(title)), story)

    def _story(self, article: Article, existing: StoredArticle | None,
               candidates: list[tuple[str, str, str]]) -> str:
        """The story an article joins: its own if stored; an earlier version's (same
        outlet and headline: an update may rewrite enough to look like another story);
        else that of a near-duplicate among the candidates."""
        if existing is not None and existing.story:
            return existing.story
        page = self.pages.get(((article.outlet or "").casefold(), plain_title(article.title)))
        if article.outlet and page:
            return page
        return story_to_join(article.id, article.text, candidates)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The writer lock for one step. It is taken per step, not per run, so the app and
        a CLI ingest take turns; when another process wrote in between, the catalogue is
        read again and every decision is made on the store as it is now."""
        with self.store.writing("ingest", self.settings.write_wait, self.on_wait):
            if self.store.conn.seen != self._generation:
                self._load_catalogue()
            yield
            self._generation = self.store.conn.seen

    def add(self, article: Article, source: str) -> None:
        if self.outlet and not article.outlet:
            article.outlet = self.outlet
        if article.url:
            article.url = strip_tracking(article.url)
        aid = article.id
        result = Result(source, "unchanged", aid, article.title, notes=list(article.notes))
        if aid in self.pending:  # the same text twice in this run
            pending = self.pending[aid]
            result.chunks = len(pending.chunks)
            result.notes.append(f"same text as {pending.result.source}")
            if article.path:
                pending.paths.add(article.path)
            self.on_done(result)
            return
        existing = self.catalogue.get(aid)
        if existing and existing.version == article.version and existing.story is None:
            result.notes.append("rewritten: stored before event dates and stories were kept")
        if _current(existing, article):
            settled = not article.path or (article.path in existing.paths
                                           and self.by_path.get(article.path) == aid)
            if settled:  # nothing to write (a re-ingest's common case): no lock either
                self._keep(article, result)
                return
            with self._writing():
                if self._keep(article, result):
                    return
        chunks = chunk_article(article, self.settings)
        paths = {*(existing.paths if existing else []), *([article.path] if article.path else [])}
        self.pending[aid] = _Pending(article, chunks, paths, result, existing is not None)
        if sum(len(p.chunks) for p in self.pending.values()) >= self.pool_chunks:
            self.flush()

    def _keep(self, article: Article, result: Result) -> bool:
        """The stored version is this one: record a new path, report "unchanged". False
        if the catalogue (just read again under the lock) no longer has it."""
        existing = self.catalogue.get(article.id)
        if existing is None or not _current(existing, article):
            return False
        result.chunks = existing.chunks
        paths = {*existing.paths, *([article.path] if article.path else [])}
        if article.path and article.path not in existing.paths:
            self.store.set_paths(article.id, paths)
            existing.paths = sorted(paths)
            result.notes.append(f"same text as {existing.paths[0]}")
        self._claim_path(article, result)
        self.on_done(result)
        return True

    def flush(self) -> None:
        """Embed every pending chunk in one call (no lock held), then write article by
        article under the writer lock."""
        pending, self.pending = list(self.pending.values()), {}
        if not pending:
            return
        texts = [embedding_text(p.article, c) for p in pending for c in p.chunks]
        try:
            vectors = self.store.embed(texts)
        except Exception as exc:
            for p in pending:
                self._fail(p.result, exc)
            return
        with self._writing():
            self._write(pending, vectors)

    def _write(self, pending: list[_Pending], vectors: list[list[float]]) -> None:
        offset, batch = 0, []
        for p in pending:
            article, n = p.article, len(p.chunks)
            existing = self.catalogue.get(article.id)
            if _current(existing, article):  # another writer's
                offset += n
                self._keep(article, p.result)
                continue
            p.existed = existing is not None
            p.paths |= set(existing.paths if existing else [])
            batch.append((p, vectors[offset:offset + n]))
            offset += n
        if not batch:
            return
        # One story for copies of one text (ingest.grouping): the candidates are the
        # stored articles nearest in meaning, and those earlier in this pool.
        means = np.asarray([article_vector(v) for _, v in batch], dtype=np.float32)
        nearest = self.store.nearest_articles(means.tolist(), STORY_CANDIDATES, STORY_CLOSE)
        close = means @ means.T >= STORY_CLOSE
        for i, ((p, _), near) in enumerate(zip(batch, nearest, strict=True)):
            article, existing = p.article, self.catalogue.get(p.article.id)
            earlier = [(q.article.id, q.article.text, q.article.story or q.article.id)
                       for j, (q, _) in enumerate(batch[:i]) if close[i, j]]
            article.story = self._story(article, existing, [*near, *earlier])
            self._note_page(article.outlet, article.title, article.story)
        self.store.write_articles([(p.article, p.chunks, v, sorted(p.paths)) for p, v in batch])
        for p, _ in batch:
            article, n = p.article, len(p.chunks)
            p.result.status = "updated" if p.existed else "added"
            p.result.chunks = n
            self.catalogue[article.id] = StoredArticle(
                id=article.id, title=article.title, text="", version=article.version,
                chunks=n, url=article.url, paths=sorted(p.paths), published=article.published,
                authors=article.authors, outlet=article.outlet, story=article.story,
                feed_summary=article.feed_summary,
            )
            self._claim_path(article, p.result)
            self.on_done(p.result)

    def _fail(self, result: Result, exc: Exception) -> None:
        logger.debug("%s failed", result.source, exc_info=exc)
        result.status, result.reason = "failed", _unexpected(exc)
        self.on_done(result)

    def _claim_path(self, article: Article, result: Result) -> None:
        if not article.path:
            return
        replaced = self._release_path(article.path, keep=article.id)
        if replaced and result.status == "added":
            result.status = "updated"
            result.notes.append(f"replaces the earlier version {replaced}")
        self.by_path[article.path] = article.id

    def _release_path(self, path: str, keep: str) -> str | None:
        """The file at `path` now holds article `keep`; drop the article it held before
        if no other file or URL holds that one."""
        old_id = self.by_path.get(path)
        if not old_id or old_id == keep or old_id not in self.catalogue:
            return None
        old = self.catalogue[old_id]
        remaining = [p for p in old.paths if p != path]
        if remaining or old.url:
            self.store.set_paths(old_id, remaining)
            old.paths = remaining
            return None
        self.store.remove_article(old_id)
        del self.catalogue[old_id]
        return old_id


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
    reader = READERS.get(suffix)
    if reader is None:
        raise SourceError(f"unsupported format {suffix!r}")
    if source.kind == "url":
        url = final_url or source.ref
        if suffix in (".html", ".htm"):
            return [(source.label, a) for a in reader(data, url=url, **meta)]
        meta["url"] = url
    if suffix == ".pdf":  # the one reader with limits of its own
        meta.update(max_pages=settings.pdf_max_pages, timeout=settings.pdf_timeout)
    return [(source.label, a) for a in reader(data, **meta)]


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
    `pool_chunks` (default FLUSH_CHUNKS): chunks embedded per pool; 1 writes each article
    as soon as it is read (the app's few sources:
    a result per source, so a cancelled job stops at the next one).
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
        # (The keyword index is not rebuilt here: its reader does that, see rag.store.keyword.)
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
        items = [(source.label, SourceError(_unexpected(exc)))]
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
            done(Result(label, "failed", reason=_unexpected(exc)))


def _unexpected(exc: Exception) -> str:
    detail = " ".join(str(exc).split())[:120]
    return f"unexpected error ({type(exc).__name__}{': ' + detail if detail else ''})"



def _current(existing: StoredArticle | None, article: Article) -> bool:
    """The store holds this very version, written with its event dates and story (a
    record from before those were kept is rewritten, so it gains them)."""
    return (existing is not None and existing.version == article.version
            and existing.story is not None)

"""Articles into a store: which to write, which story each joins, which files hold it.

An `Ingestor` keeps a catalogue of the stored articles in memory so each decision is
cheap, and writes new and changed articles in pools (`flush`) under the store's writer
lock, taken a pool at a time so the app and a CLI ingest take turns. `on_done` gets
each article's `Result` when it is final. Sources are read by `ingest.pipeline`.

Identity rules (see `rag.records.article_id_for`): an article with a URL is its
canonical URL; without one it is its normalised text, so the same file under two
paths is one article. A file whose content changed gets a new id; the article its
path used to hold is then replaced (its chunks removed), never left as an orphan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ingest.chunking import chunk_article, embedding_text
from ingest.grouping import story_to_join
from ingest.results import Result, unexpected
from rag.records import Article, Chunk, StoredArticle, plain_title, strip_tracking
from rag.settings import Settings
from rag.store.articles import ArticleStore
from rag.store.lock import Waiting
from rag.store.metadata import article_vector

logger = logging.getLogger(__name__)
STORY_CANDIDATES = 8  # stored articles nearest in meaning compared for near-duplicates
# Cosine of article vectors below which two articles are not compared word by word:
# copies sit far above it (their texts are mostly the same); most other pairs, below.
STORY_CLOSE = 0.75

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
        result.status, result.reason = "failed", unexpected(exc)
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



def _current(existing: StoredArticle | None, article: Article) -> bool:
    """The store holds this very version, written with its event dates and story (a
    record from before those were kept is rewritten, so it gains them)."""
    return (existing is not None and existing.version == article.version
            and existing.story is not None)

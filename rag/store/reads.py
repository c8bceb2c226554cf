"""Reading the store's articles and chunks: listings and lookups by id, URL, path,
story or meaning.

`ArticleReads` is a part of `rag.store.articles.ArticleStore` (a mixin: it uses the
store's `articles` and `chunks` collections, its keyword table `keywords`, `exists`,
`write_under_way` and `_guard`). Reading never takes the writer lock and never waits;
it skips records a writer has not committed yet (no `version`), and sees other
processes' writes after `ArticleStore.sync`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from chromadb.api.models.Collection import Collection

from rag.records import StoredArticle, canonical_url, split_line_ref
from rag.store.metadata import to_article

logger = logging.getLogger(__name__)
PAGE = 1000  # records per `get`: one call over a large collection hits Chroma's limits
ID_PAGE = 20_000  # ids per `get` that reads ids alone (`_get_all`)


class ArticleReads:
    """The store's read side (mixed into `ArticleStore`)."""

    def _get_all(self, collection: Collection, where: dict[str, Any] | None = None,
                 include: list[str] | None = None) -> dict[str, list[Any]]:
        """`collection.get` of every record (matching `where`): the ids first, in pages of
        `ID_PAGE`, then the records by id in pages of `PAGE`. Chroma pages by offset and
        each page pays for its offset (~2 s a page at 400k–800k chunks), so reading a
        large collection in pages of 1,000 grew with its square: at 100k chunks the ids
        alone took 10.0 s in pages of 1,000, 0.8 s in pages of 20,000."""
        ids = self._all_ids(collection, where)
        out: dict[str, list[Any]] = {"ids": [], "metadatas": [], "documents": []}
        for start in range(0, len(ids), PAGE):
            page = collection.get(ids=ids[start:start + PAGE], include=include or [])
            for key in out:
                out[key].extend(page.get(key) or [])
        return out

    def _all_ids(self, collection: Collection, where: dict[str, Any] | None = None
                 ) -> list[str]:
        """Every record's id (matching `where`), in pages of `ID_PAGE` (`_get_all`)."""
        ids: list[str] = []
        while True:
            page = collection.get(where=where, limit=ID_PAGE, offset=len(ids), include=[])
            ids += page["ids"]
            if len(page["ids"]) < ID_PAGE:
                return ids

    def chunk_texts(self, ids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """Text and metadata of these chunks, by id: from the keyword table, which holds
        every chunk's (a local SQLite read: 1.4–4.8 ms for 320 chunks against Chroma's
        `get` 95–470 ms, measured at 26k chunks), and from Chroma those it lacks (a
        table another machine's writes left behind)."""
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        try:
            if self.keywords.exists():
                found = self.keywords.rows(ids)
        except (OSError, sqlite3.Error):  # unreadable: Chroma holds them all anyway
            logger.warning("the keyword table at %s cannot be read", self.keywords.path,
                           exc_info=True)
        rest = [i for i in ids if i not in found]
        for start in range(0, len(rest), PAGE):
            got = self.chunks.get(ids=rest[start:start + PAGE],
                                  include=["documents", "metadatas"])
            found.update(zip(got["ids"], zip(got["documents"], got["metadatas"],
                                             strict=True), strict=True))
        return found

    def list_articles(self) -> list[StoredArticle]:
        if not self.exists:
            return []
        got = self._get_all(self.articles, include=["metadatas"])
        found = [
            to_article(i, m, "") for i, m in zip(got["ids"], got["metadatas"], strict=True)
            if m.get("version")
        ]
        return sorted(found, key=lambda a: (a.published or date.min, a.title), reverse=True)

    def story_members(self, stories: Iterable[str]) -> dict[str, list[StoredArticle]]:
        """The stored articles of each story (texts left out). An article stored before
        stories were kept is a story of its own, named by its id."""
        stories = sorted(set(stories))
        if not self.exists or not stories:
            return {}
        got = self._guard("reading it", lambda: self.articles.get(
            where={"story": {"$in": stories}}, include=["metadatas"]))
        out: dict[str, list[StoredArticle]] = {}
        for aid, meta in zip(got["ids"], got["metadatas"], strict=True):
            if meta.get("version"):
                out.setdefault(str(meta["story"]), []).append(to_article(aid, meta, ""))
        missing = [s for s in stories if s not in out]
        for article in self.get_articles(missing):  # older records carry no story:
            out[article.id] = [article]  # the id is the story
        return out

    def nearest_articles(self, vectors: list[list[float]], n: int, min_similarity: float
                         ) -> list[list[tuple[str, str, str]]]:
        """For each vector, the stored articles nearest to it, at least `min_similarity`
        (cosine) close: (id, text, story). Ingest compares a new article with these to
        find its copies."""
        if not vectors:
            return []
        if not self.exists or not (count := self.articles.count()):
            return [[] for _ in vectors]
        got = self._guard("reading it", lambda: self.articles.query(
            query_embeddings=vectors, n_results=min(n, count),
            include=["documents", "metadatas", "distances"]))
        return [[(aid, doc or "", str(meta.get("story") or aid))
                 for aid, doc, meta, dist in zip(ids, docs, metas, dists, strict=True)
                 if meta.get("version") and 1.0 - dist >= min_similarity]
                for ids, docs, metas, dists in zip(got["ids"], got["documents"],
                                                   got["metadatas"], got["distances"],
                                                   strict=True)]

    def newest_published(self) -> date | None:
        """The latest publication date in the library (what "now" is in an archive)."""
        if not self.exists:
            return None
        got = self._guard("reading it", lambda: self._get_all(self.articles,
                                                              include=["metadatas"]))
        days = [m.get("published") for m in got["metadatas"] if m.get("published")]
        return date.fromisoformat(max(days)) if days else None

    def get_article(self, article_id: str) -> StoredArticle | None:
        if not self.exists:
            return None
        got = self.articles.get(ids=[article_id], include=["metadatas", "documents"])
        if not got["ids"] or not got["metadatas"][0].get("version"):
            return None
        return to_article(got["ids"][0], got["metadatas"][0], got["documents"][0] or "")

    def get_articles(self, article_ids: Sequence[str]) -> list[StoredArticle]:
        """The stored articles of these ids (texts left out; unknown ids skipped)."""
        if not self.exists or not article_ids:
            return []
        got = self._guard("reading it", lambda: self.articles.get(
            ids=list(dict.fromkeys(article_ids)), include=["metadatas"]))
        return [to_article(i, m, "") for i, m in zip(got["ids"], got["metadatas"], strict=True)
                if m.get("version")]

    def find_by_path(self, path: str) -> list[StoredArticle]:
        if not self.exists:
            return []
        got = self.articles.get(where={"paths": {"$contains": path}}, include=["metadatas"])
        return [to_article(i, m, "") for i, m in zip(got["ids"], got["metadatas"], strict=True)
                if m.get("version")]

    def resolve(self, ref: str) -> StoredArticle | None:
        """An article by id, URL or file path: what `remove` accepts."""
        article = self.get_article(ref)
        if article or not self.exists:
            return article
        if ref.startswith(("http://", "https://")):
            got = self.articles.get(where={"url": canonical_url(ref)}, include=["metadatas"])
            ids = got["ids"]
        else:
            ids = [a.id for a in self.find_by_path(str(Path(ref).expanduser().resolve()))]
        return self.get_article(ids[0]) if ids else None

    def resolve_all(self, ref: str) -> list[StoredArticle]:
        """Every article `ref` names: one by id or URL; by a path, each article that file
        holds (a .jsonl file holds one per line, stored as `file.jsonl#L<n>`: `line_ref`)."""
        one = self.resolve(ref)
        if one is not None and one.id == ref:
            return [one]  # an id names one article (and a file's lines need a listing:
            # 3.8 s an article at 25k articles, so `remove` of 300 ids took 19 minutes)
        found = {one.id: one} if one else {}
        if self.exists and not ref.startswith(("http://", "https://")):
            file = str(Path(ref).expanduser().resolve())
            for article in self.list_articles():
                if any(line is not None and name == file
                       for name, line in map(split_line_ref, article.paths)):
                    found.setdefault(article.id, article)
        return list(found.values())

    def chunk_records(self, article_id: str | None = None) -> list[dict[str, Any]]:
        """Chunks with their metadata, in article order: for citations, stats and tests."""
        if not self.exists:
            return []
        where = {"article_id": article_id} if article_id else None
        got = self._get_all(self.chunks, where=where, include=["metadatas", "documents"])
        rows = [
            {"id": i, "text": d, **m}
            for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        ]
        return sorted(rows, key=lambda r: (r["article_id"], r["chunk_index"]))

    def counts(self) -> tuple[int, int]:
        if not self.exists:
            return 0, 0
        if self.write_under_way():  # a new article's record is there before it is
            return len(self.list_articles()), self.chunks.count()
        return self.articles.count(), self.chunks.count()

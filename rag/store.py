"""The Chroma store: one collection of chunks, one of articles, written crash-safely.

The same code serves the embedded `PersistentClient` and a `chroma run` server
(`CHROMA_HOST`). Writes follow a small protocol so a process killed at any point
(kill -9) leaves a store that `recover()` turns into exactly what a clean run gives:

1. the article record is marked `dirty=True` (a new one is created with `version=""`);
2. the new version's chunks are added (their ids carry the version);
3. the record is updated to the new version, still dirty;
4. chunks of any other version are deleted;
5. the record is marked clean.

`recover()` finds dirty records and deletes every chunk not of the committed version
(and the record itself when nothing was ever committed). Readers skip dirty-new records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings as ChromaSettings

from rag.embeddings import EmbedSpec, LlamaIndexEmbeddingFunction, get_embed_model
from rag.models import Article, Chunk, StoredArticle, canonical_url, split_line_ref
from rag.settings import Settings

ARTICLES_SUFFIX = "-articles"
_PAGE = 1000


class StoreError(RuntimeError):
    """A store problem the user can fix; the message says how."""


class EmbeddingMismatchError(StoreError):
    pass


def make_client(settings: Settings) -> ClientAPI:
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_host:
        try:
            client = chromadb.HttpClient(
                host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
            )
            client.heartbeat()
        except Exception as exc:
            raise StoreError(
                f"cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port}"
                f" ({type(exc).__name__}); start it with `chroma run --path DIR --port "
                f"{settings.chroma_port}` or unset CHROMA_HOST to use the embedded store"
            ) from exc
        return client
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = str(settings.data_dir / "chroma")
    return chromadb.PersistentClient(path=path, settings=chroma_settings)


def date_int(value: date) -> int:
    """A date as YYYYMMDD: how chunks store it, so Chroma can compare it in `where`."""
    return value.year * 10000 + value.month * 100 + value.day


def _location(settings: Settings) -> str:
    if settings.chroma_host:
        return f"chroma server {settings.chroma_host}:{settings.chroma_port}"
    return str(settings.data_dir / "chroma")


class ArticleStore:
    """Articles and their chunks in Chroma. Opening does not load the embedding model."""

    def __init__(
        self, settings: Settings, client: ClientAPI | None = None, check_model: bool = True
    ) -> None:
        self.settings = settings
        self.spec = EmbedSpec.parse(settings.embed_model)
        self.client = client or make_client(settings)
        self.location = _location(settings)
        self._function = LlamaIndexEmbeddingFunction(None, settings.embed_model)
        self._chunks: Collection | None = None
        self._articles: Collection | None = None
        self._check = check_model
        self._open(create=False)

    # -- collections -------------------------------------------------------

    @property
    def name(self) -> str:
        return self.settings.collection

    def _open(self, create: bool) -> bool:
        existing = {c.name for c in self.client.list_collections()}
        names = (self.name, self.name + ARTICLES_SUFFIX)
        if not create and not all(n in existing for n in names):
            return False
        if self.name in existing and self._check:
            self._check_model(self.client.get_collection(self.name, embedding_function=None))
        meta: dict[str, Any] = {"embed_model": self.spec.name}
        if create:
            meta["embed_dim"] = len(self.embed_model.get_text_embedding("dimension probe"))
            meta["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        kwargs: dict[str, Any] = {
            "metadata": meta,
            "configuration": {"hnsw": {"space": "cosine"}},
            "embedding_function": self._function,
        }
        self._chunks = self.client.get_or_create_collection(self.name, **kwargs)
        self._articles = self.client.get_or_create_collection(
            self.name + ARTICLES_SUFFIX, **kwargs
        )
        return True

    def _check_model(self, collection: Collection) -> None:
        recorded = (collection.metadata or {}).get("embed_model")
        if recorded and recorded != self.spec.name:
            raise EmbeddingMismatchError(
                f"collection {self.name!r} in {self.location} was built with embedding model "
                f"{recorded!r} (dimension {collection.metadata.get('embed_dim')}), but "
                f"RAG_EMBED_MODEL is {self.settings.embed_model!r}. Mixing them would make search "
                f"meaningless. Either set RAG_EMBED_MODEL back, use another --collection, or "
                f"re-index: `python -m ingest drop --yes` then ingest your articles again."
            )

    @property
    def exists(self) -> bool:
        return self._chunks is not None

    def ensure(self) -> None:
        if not self.exists:
            self._open(create=True)

    @property
    def chunks(self) -> Collection:
        if self._chunks is None:
            raise StoreError(self.empty_message())
        return self._chunks

    @property
    def articles(self) -> Collection:
        if self._articles is None:
            raise StoreError(self.empty_message())
        return self._articles

    def has_chunks(self) -> bool:
        """Whether there is anything to answer from (the one emptiness check)."""
        return self.exists and self.chunks.count() > 0

    def empty_message(self) -> str:
        return (
            f"the collection {self.name!r} in {self.location} has no articles yet; add some with "
            "`python -m ingest PATH-OR-URL ...`"
        )

    @property
    def embed_model(self):  # noqa: ANN201 - a llama-index BaseEmbedding
        model = get_embed_model(self.settings)
        self._function.model = model
        return model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_model.get_text_embedding_batch(list(texts))

    def generation(self) -> str:
        """A stamp that changes whenever chunks are written or removed (for derived indexes).

        Read fresh each time: another process (or a server client) may have written.
        """
        if not self.exists:
            return ""
        meta = self.client.get_collection(self.name, embedding_function=None).metadata or {}
        return str(meta.get("generation", ""))

    def _bump_generation(self) -> None:
        import uuid

        collection = self.client.get_collection(self.name, embedding_function=None)
        meta = {k: v for k, v in (collection.metadata or {}).items() if not k.startswith("hnsw:")}
        self.chunks.modify(metadata={**meta, "generation": uuid.uuid4().hex[:12]})

    def drop(self) -> None:
        for name in (self.name, self.name + ARTICLES_SUFFIX):
            if name in {c.name for c in self.client.list_collections()}:
                self.client.delete_collection(name)
        self._chunks = self._articles = None

    # -- reading -----------------------------------------------------------

    def _get_all(self, collection: Collection, **kwargs: Any) -> dict[str, list[Any]]:
        """`collection.get` in pages: one call over a large collection hits Chroma's limits."""
        out: dict[str, list[Any]] = {"ids": [], "metadatas": [], "documents": []}
        offset = 0
        while True:
            page = collection.get(limit=_PAGE, offset=offset, **kwargs)
            for key in out:
                out[key].extend(page.get(key) or [])
            if len(page["ids"]) < _PAGE:
                return out
            offset += _PAGE

    def list_articles(self) -> list[StoredArticle]:
        if not self.exists:
            return []
        got = self._get_all(self.articles, include=["metadatas"])
        found = [
            _to_article(i, m, "") for i, m in zip(got["ids"], got["metadatas"], strict=True)
            if m.get("version")
        ]
        return sorted(found, key=lambda a: (a.published or date.min, a.title), reverse=True)

    def get_article(self, article_id: str) -> StoredArticle | None:
        if not self.exists:
            return None
        got = self.articles.get(ids=[article_id], include=["metadatas", "documents"])
        if not got["ids"] or not got["metadatas"][0].get("version"):
            return None
        return _to_article(got["ids"][0], got["metadatas"][0], got["documents"][0] or "")

    def find_by_path(self, path: str) -> list[StoredArticle]:
        if not self.exists:
            return []
        got = self.articles.get(where={"paths": {"$contains": path}}, include=["metadatas"])
        return [_to_article(i, m, "") for i, m in zip(got["ids"], got["metadatas"], strict=True)
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
            from pathlib import Path

            ids = [a.id for a in self.find_by_path(str(Path(ref).expanduser().resolve()))]
        return self.get_article(ids[0]) if ids else None

    def resolve_all(self, ref: str) -> list[StoredArticle]:
        """Every article `ref` names: one by id or URL; by a path, each article that file
        holds (a .jsonl file holds one per line, stored as `file.jsonl#L<n>`: `line_ref`)."""
        one = self.resolve(ref)
        found = {one.id: one} if one else {}
        if self.exists and not ref.startswith(("http://", "https://")):
            from pathlib import Path

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
        return len(self.list_articles()), self.chunks.count()

    # -- writing -----------------------------------------------------------

    def write_article(
        self,
        article: Article,
        chunks: Sequence[Chunk],
        embeddings: Sequence[Sequence[float]],
        paths: Iterable[str],
    ) -> None:
        """Replace whatever version of this article is stored with this one (steps 1-5 above)."""
        if not chunks:
            raise ValueError("an article needs at least one chunk")
        self.ensure()
        aid, version = article.id, article.version
        vector = np.mean(np.asarray(embeddings, dtype=np.float32), axis=0)
        vector = (vector / (np.linalg.norm(vector) or 1.0)).tolist()
        self._bump_generation()  # before and after: a reader that indexes mid-write is stale
        old = self.articles.get(ids=[aid], include=["metadatas"])
        old_meta = old["metadatas"][0] if old["ids"] else {}
        # 1. mark dirty; a committed record keeps its text and metadata until step 3, so
        # recover() can fall back to it intact
        if old["ids"]:
            self.articles.update(ids=[aid], metadatas=[{"dirty": True}])
        else:
            self.articles.upsert(
                ids=[aid], embeddings=[vector], documents=[article.text],
                metadatas=[{"version": "", "dirty": True, "title": article.title}],
            )
        # 2. the new chunks
        meta = _chunk_base_meta(article, next(iter(paths), None))
        self.chunks.upsert(
            ids=[c.id for c in chunks],
            embeddings=[list(e) for e in embeddings],
            documents=[c.text for c in chunks],
            metadatas=[
                {**meta, "version": version, "chunk_index": c.index, "start": c.start,
                 "end": c.end, "paragraph": c.paragraph, "paragraph_end": c.paragraph_end}
                for c in chunks
            ],
        )
        # 3. commit the new version
        record = _article_meta(article, sorted(set(paths)), len(chunks))
        # upsert merges metadata: drop keys the new version lacks (None deletes a key)
        stale = {k: None for k in old_meta if k not in record and k != "dirty"}
        self.articles.upsert(
            ids=[aid], embeddings=[vector], documents=[article.text],
            metadatas=[{**stale, **record, "dirty": True}],
        )
        # 4. drop other versions, 5. clean
        self.chunks.delete(where={"$and": [{"article_id": aid}, {"version": {"$ne": version}}]})
        self.articles.update(ids=[aid], metadatas=[{"dirty": False}])
        self._bump_generation()

    def set_paths(self, article_id: str, paths: Iterable[str]) -> None:
        """Record which files hold this article; the chunks keep their first path."""
        paths = sorted(set(paths))
        # Chroma merges metadata on update and upsert alike; None is what deletes a key.
        self.articles.update(ids=[article_id], metadatas=[{"paths": paths or None}])

    def remove_article(self, article_id: str) -> bool:
        if not self.exists:
            return False
        got = self.articles.get(ids=[article_id])
        if not got["ids"]:
            return False
        self.articles.update(ids=[article_id], metadatas=[{"version": "", "dirty": True}])
        self.chunks.delete(where={"article_id": article_id})
        self.articles.delete(ids=[article_id])
        self._bump_generation()
        return True

    def recover(self) -> int:
        """Finish or undo writes that a killed process left half done. Returns how many."""
        if not self.exists:
            return 0
        dirty = self.articles.get(where={"dirty": True}, include=["metadatas"])
        for aid, meta in zip(dirty["ids"], dirty["metadatas"], strict=True):
            version = meta.get("version", "")
            if version:
                self.chunks.delete(
                    where={"$and": [{"article_id": aid}, {"version": {"$ne": version}}]}
                )
                self.articles.update(ids=[aid], metadatas=[{"dirty": False}])
            else:
                self.chunks.delete(where={"article_id": aid})
                self.articles.delete(ids=[aid])
        if dirty["ids"]:
            self._bump_generation()
        return len(dirty["ids"])


def _chunk_base_meta(article: Article, path: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"article_id": article.id, "title": article.title}
    if article.published:
        meta["published"] = article.published.isoformat()
        meta["published_int"] = date_int(article.published)
    if article.outlet:
        meta["outlet"] = article.outlet
    if article.url:
        meta["url"] = article.url
    if path:
        meta["path"] = path
    return meta


def _article_meta(article: Article, paths: list[str], n_chunks: int) -> dict[str, Any]:
    meta = _chunk_base_meta(article, None)
    del meta["article_id"]
    if article.url:
        meta["url"] = canonical_url(article.url)
        meta["source_url"] = article.url
    meta.update({
        "version": article.version,
        "chunks": n_chunks,
        "ingested_at": datetime.now(UTC).isoformat(timespec="seconds"),
    })
    if paths:
        meta["paths"] = paths
    if article.authors:
        meta["authors"] = list(article.authors)
    return meta


def _to_article(aid: str, meta: dict[str, Any], text: str) -> StoredArticle:
    published = meta.get("published")
    authors = meta.get("authors") or []
    return StoredArticle(
        id=aid,
        title=meta.get("title", ""),
        text=text,
        version=meta.get("version", ""),
        chunks=int(meta.get("chunks", 0)),
        url=meta.get("source_url") or meta.get("url"),
        paths=list(meta.get("paths") or []),
        published=date.fromisoformat(published) if published else None,
        authors=list(authors),
        outlet=meta.get("outlet"),
        ingested_at=meta.get("ingested_at"),
    )

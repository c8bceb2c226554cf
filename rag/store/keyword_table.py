"""The keyword table: every chunk's words in a SQLite inverted index beside the store,
changed by a write by that write's chunks (never rebuilt whole).

One file per store and collection, `<data dir>/keyword/<where>/<collection>.sqlite`
(`where`: `local`, or the Chroma server's `host_port`, with its tenant and database
when they are not Chroma's defaults: `table_path`), in WAL mode so searches never
wait for the writer. Tables:

- `chunks`: one row per chunk (a rowid never reused, id, article, version, the chunk's
  text and metadata as JSON, its number of index terms, its distinct terms);
- `postings`: a term's postings packed as numpy records (chunk rowid, the term's count
  in it, the chunk's length: 8 bytes each) in segments, one per write that held the
  term; a write's segment is merged into the newer ones before it while they are at
  most `_MERGE` times its size and the result at most `_SEGMENT_MAX` postings, so a term
  has O(log n) segments (plus one per `_SEGMENT_MAX`) and a posting is rewritten
  O(log n) times;
- `gone`: rowids of removed chunks whose postings are still in a segment: a search
  skips them (it reads only rows `chunks` holds), a merge drops them, and when they
  are a quarter of the table (or `_COMPACT_AT`) every term is rewritten without them;
- `vocab`: each term's document frequency over the chunks held, kept with every insert
  and delete (the extractive reader's IDF, and BM25's);
- `state`: the chunk count, their total length, the last segment number, and
  `generation`: the store generation the table is in step with (`rag.store.writes`).

Words are what llama-index's `BM25Retriever` (bm25s) made of a chunk: the node's text
with its title (`chunk_node(...).get_content(EMBED)`), lowercased, `\\w\\w+` tokens,
bm25s's English stopwords dropped, Snowball (PyStemmer) English stems; a query is
tokenised the same way. Every chunk holding a query term is scored with bm25s's Lucene
formula (k1 1.5, b 0.75, IDF log(1 + (N - df + .5) / (df + .5))) over the chunks held
now, so scores are bm25s's (tests/store/test_keyword_table.py checks it against bm25s).

Written here, not taken from a library: SQLite FTS5's `bm25()` ranking was measured
2.5x slower than bm25s, bm25s itself can only be rebuilt whole, and the pinned
chromadb has no sparse index outside its cloud (docs/decisions/keyword-index.md).
Only the writer (holding the store's writer lock) writes here; every write is one
SQLite transaction.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson  # 3.7x json's speed on chunk metadata, read for every hit
from llama_index.core.schema import MetadataMode

from rag.settings import Settings
from rag.store.nodes import chunk_node

_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s's and llama-index's default token_pattern
K1, B = 1.5, 0.75  # bm25s's defaults (method "lucene")
_VERSION = 3  # PRAGMA user_version of this layout (1: FTS5, 2: a row per posting)
_POSTING = np.dtype([("doc", "<i4"), ("tf", "<u2"), ("dl", "<u2")])  # 8 bytes a posting
_COMPACT_AT = 1000  # removed chunks that make a compaction (also a quarter of those held)
_MERGE = 2  # a term's newest segment is merged into the one before it within this factor
# A merge never makes a segment of more postings than this (2 MiB): without it, the
# write that completes a cascade would rewrite a common term's every posting (MBs, for
# each of a few hundred terms at a million chunks) inside one write. Above it a term
# keeps one segment per this many postings: a few for the commonest at a million.
_SEGMENT_MAX = 1 << 18
_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    article_id TEXT NOT NULL, version TEXT NOT NULL, text TEXT NOT NULL, meta TEXT NOT NULL,
    length INTEGER NOT NULL, terms TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE TABLE IF NOT EXISTS postings (
    term TEXT NOT NULL, seg INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (term, seg)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gone (doc INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS vocab (term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
"""


@lru_cache(maxsize=1)
def _stemmer():  # noqa: ANN202 - PyStemmer has no type stubs
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def _gone(db: sqlite3.Connection) -> np.ndarray:
    """The rowids of removed chunks whose postings may still be held, in order."""
    return np.fromiter((r[0] for r in db.execute("SELECT doc FROM gone ORDER BY doc")),
                       dtype=np.int32)


def _postings(db: sqlite3.Connection, term: str) -> np.ndarray:
    """A term's postings, its segments in order (empty: none held)."""
    parts = [np.frombuffer(r[0], dtype=_POSTING) for r in db.execute(
        "SELECT data FROM postings WHERE term = ? ORDER BY seg", (term,))]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=_POSTING)


def _without(postings: np.ndarray, gone: np.ndarray) -> np.ndarray:
    """The postings of chunks not in `gone` (sorted)."""
    if not len(gone) or not len(postings):
        return postings
    at = np.searchsorted(gone, postings["doc"]).clip(max=len(gone) - 1)
    return postings[gone[at] != postings["doc"]]


def index_terms(text: str) -> list[str]:
    """A chunk's terms, as bm25s indexed them (stopwords dropped, stemmed)."""
    stop = _stopwords()
    return _stemmer().stemWords([w for w in _TOKEN.findall(text.lower()) if w not in stop])


def query_terms(text: str) -> list[str]:
    """A query's terms, as llama-index's BM25Retriever asked bm25s: the same, a term
    repeated counts again."""
    return index_terms(text)


def node_text(chunk_id: str, text: str, meta: dict[str, Any]) -> str:
    """What BM25 reads of a chunk: its text and its title (the node's EMBED content)."""
    return chunk_node(chunk_id, text, meta).get_content(metadata_mode=MetadataMode.EMBED)


def table_path(settings: Settings) -> Path:
    """`<data dir>/keyword/<where>/<collection>.sqlite`: `where` is `local`, or the
    server's `host_port`, and for a tenant or database other than Chroma's defaults
    `host_port/<tenant>/<database>` (so the default's tables stay where they were).
    Names are kept to letters, digits, `_` and `-`, anything else `%XX` (so `.`, `..`
    and `/` cannot become path parts, and no two names share a folder); the collection
    name is Chroma's, already safe."""

    def safe(name: str) -> str:
        return "".join(c if c.isascii() and (c.isalnum() or c in "_-")
                       else "".join(f"%{b:02X}" for b in c.encode()) for c in name)

    where = Path(f"{settings.chroma_host}_{settings.chroma_port}" if settings.chroma_host
                 else "local")
    if settings.chroma_host and (settings.chroma_tenant, settings.chroma_database) != (
            "default_tenant", "default_database"):  # chromadb's defaults
        where = where / safe(settings.chroma_tenant) / safe(settings.chroma_database)
    return Path(settings.data_dir) / "keyword" / where / f"{settings.collection}.sqlite"


class KeywordTable:
    """The keyword table of one store's collection (module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()  # a connection per thread

    @classmethod
    def of(cls, settings: Settings) -> KeywordTable:
        return cls(table_path(settings))

    # -- the connection ---------------------------------------------------------

    def exists(self) -> bool:
        return self.path.is_file()

    @property
    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if conn.execute("PRAGMA user_version").fetchone()[0] != _VERSION:
                # another layout (or a new file): start empty; the next writer fills it
                conn.execute("BEGIN IMMEDIATE")
                names = [r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE "
                    "%TABLE%' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'terms_%'")]
                for name in names:
                    conn.execute(f'DROP TABLE IF EXISTS "{name}"')
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {_VERSION}")
                conn.execute("COMMIT")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- state ------------------------------------------------------------------

    def _state(self, key: str, default: Any = None) -> Any:  # noqa: ANN401
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    @staticmethod
    def _set(db: sqlite3.Connection, key: str, value: Any) -> None:  # noqa: ANN401
        db.execute("INSERT OR REPLACE INTO state(key, value) VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> str | None:
        """The store generation this table is in step with (None: not known to be)."""
        return self._state("generation") if self.exists() else None

    def set_generation(self, stamp: str | None) -> None:
        with self._transaction() as db:
            self._set(db, "generation", stamp)

    def clear(self) -> None:
        """Forget every chunk (the store was dropped)."""
        if not self.exists():
            return
        with self._transaction() as db:
            for table in ("chunks", "postings", "gone", "vocab", "state"):
                db.execute(f"DELETE FROM {table}")

    def count(self) -> int:
        return int(self._state("docs", 0)) if self.exists() else 0

    def ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM chunks")}

    def runs(self, starts: Iterable[float], length: int = 10) -> list[str]:
        """Ids of runs of `length` chunks in the order they were written, each starting
        at a fraction (0: the oldest, 1: the newest run) of the rowids held."""
        low, high = self.db.execute("SELECT min(rowid), max(rowid) FROM chunks").fetchone()
        if low is None:
            return []
        out: list[str] = []
        for start in starts:
            if start >= 1:
                got = self.db.execute("SELECT id FROM chunks ORDER BY rowid DESC LIMIT ?",
                                      (length,))
            else:
                got = self.db.execute("SELECT id FROM chunks WHERE rowid >= ? ORDER BY rowid "
                                      "LIMIT ?", (low + int(start * (high - low)), length))
            out += [r[0] for r in got]
        return out

    # -- writing ----------------------------------------------------------------

    def add(self, rows: Iterable[tuple[str, str, dict[str, Any]]]) -> int:
        """Index chunks given as (id, text, metadata); one already held is left as it is
        (a chunk id names its article's version, so its text cannot have changed)."""
        rows = list(rows)
        if not rows:
            return 0
        with self._transaction() as db:
            have = set()
            for start in range(0, len(rows), 500):
                part = [r[0] for r in rows[start:start + 500]]
                have |= {r[0] for r in db.execute(
                    f"SELECT id FROM chunks WHERE id IN ({','.join('?' * len(part))})", part)}
            df: Counter[str] = Counter()
            postings: dict[str, list[tuple[int, int, int]]] = {}
            added = length = 0
            for cid, text, meta in rows:
                if cid in have:
                    continue
                have.add(cid)
                terms = index_terms(node_text(cid, text, meta))
                tf = Counter(terms)
                doc = db.execute(
                    "INSERT INTO chunks(id, article_id, version, text, meta, length, terms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (cid, meta.get("article_id", ""), str(meta.get("version", "")), text,
                     json.dumps(meta, separators=(",", ":")), len(terms), " ".join(tf))
                ).lastrowid
                dl = min(len(terms), 65535)  # a chunk is under 256 word pieces
                for term, n in tf.items():
                    postings.setdefault(term, []).append((doc, min(n, 65535), dl))
                df.update(tf.keys())
                added += 1
                length += len(terms)
            self._append(db, postings)
            self._count(db, df, added, length)
        return added

    def _append(self, db: sqlite3.Connection, postings: dict[str, list[tuple[int, int, int]]]
                ) -> None:
        """Each term's new postings become its newest segment, merged into the ones
        before it while those are at most `_MERGE` times its size: a term so keeps
        O(log n) segments, each posting is rewritten O(log n) times, and a write costs
        its own postings (amortised), not the table's. Postings of removed chunks are
        dropped when their segment is merged."""
        if not postings:
            return
        seg = int(self._state("seg", 0)) + 1
        self._set(db, "seg", seg)
        held: dict[str, list[tuple[int, int]]] = {}
        terms = list(postings)
        for start in range(0, len(terms), 500):
            part = terms[start:start + 500]
            for term, old, n in db.execute(
                    f"SELECT term, seg, n FROM postings WHERE term IN "
                    f"({','.join('?' * len(part))}) ORDER BY term, seg", part):
                held.setdefault(term, []).append((old, n))
        gone: np.ndarray | None = None
        rows = []
        for term, items in postings.items():
            new = np.array(items, dtype=_POSTING)  # in doc order: rowids only grow
            segs, merged, size = held.get(term, []), [], len(new)
            while segs and segs[-1][1] <= _MERGE * size and size + segs[-1][1] <= _SEGMENT_MAX:
                old, n = segs.pop()
                merged.append(old)
                size += n
            if merged:
                marks = ",".join("?" * len(merged))
                parts = [np.frombuffer(r[0], dtype=_POSTING) for r in db.execute(
                    f"SELECT data FROM postings WHERE term = ? AND seg IN ({marks}) "
                    "ORDER BY seg", (term, *merged))]
                db.execute(f"DELETE FROM postings WHERE term = ? AND seg IN ({marks})",
                           (term, *merged))
                new = np.concatenate([*parts, new])
                if gone is None:
                    gone = _gone(db)
                new = _without(new, gone)
            rows.append((term, seg, len(new), new.tobytes()))
        db.executemany("INSERT INTO postings(term, seg, n, data) VALUES (?, ?, ?, ?)", rows)

    def remove_article(self, article_id: str, keep_version: str | None = None) -> int:
        """Forget an article's chunks, or those not of `keep_version`."""
        where, args = "article_id = ?", [article_id]
        if keep_version is not None:
            where, args = "article_id = ? AND version != ?", [article_id, keep_version]
        return self._remove(where, args)

    def remove_ids(self, ids: Sequence[str]) -> int:
        removed = 0
        for start in range(0, len(ids), 500):
            part = list(ids[start:start + 500])
            removed += self._remove(f"id IN ({','.join('?' * len(part))})", part)
        return removed

    def _remove(self, where: str, args: list[Any]) -> int:
        """A removed chunk's row and counts go at once; its postings stay (a search
        skips them, as it skips every row no longer held) until their segment is
        merged, or the table compacted when they are a fifth of it."""
        with self._transaction() as db:
            gone = db.execute(f"SELECT rowid, length, terms FROM chunks WHERE {where}",
                              args).fetchall()
            if not gone:
                return 0
            df: Counter[str] = Counter()
            for _, _, terms in gone:
                df.update(terms.split())
            db.executemany("INSERT OR IGNORE INTO gone(doc) VALUES (?)",
                           [(r[0],) for r in gone])
            db.executemany("DELETE FROM chunks WHERE rowid = ?", [(r[0],) for r in gone])
            self._count(db, Counter({t: -n for t, n in df.items()}), -len(gone),
                        -sum(n for _, n, _ in gone))
            dead = db.execute("SELECT count(*) FROM gone").fetchone()[0]
            if dead > max(_COMPACT_AT, int(self._state("docs", 0)) // 4):
                self._compact(db)
            return len(gone)

    def _compact(self, db: sqlite3.Connection) -> None:
        """Rewrite every term's postings as one segment without removed chunks."""
        gone = _gone(db)
        terms = [r[0] for r in db.execute("SELECT DISTINCT term FROM postings")]
        seg = int(self._state("seg", 0)) + 1
        self._set(db, "seg", seg)
        for term in terms:
            held = _without(_postings(db, term), gone)
            db.execute("DELETE FROM postings WHERE term = ?", (term,))
            if len(held):
                db.execute("INSERT INTO postings(term, seg, n, data) VALUES (?, ?, ?, ?)",
                           (term, seg, len(held), held.tobytes()))
        db.execute("DELETE FROM gone")

    def _count(self, db: sqlite3.Connection, df: Counter[str], docs: int, length: int) -> None:
        db.executemany("INSERT INTO vocab(term, df) VALUES (?, ?) "
                       "ON CONFLICT(term) DO UPDATE SET df = df + excluded.df",
                       df.items())
        if any(n < 0 for n in df.values()):
            db.execute("DELETE FROM vocab WHERE df <= 0")
        for key, delta in (("docs", docs), ("length", length)):
            db.execute("INSERT INTO state(key, value) VALUES (?, ?) ON CONFLICT(key) "
                       "DO UPDATE SET value = value + excluded.value", (key, delta))

    # -- reading ----------------------------------------------------------------

    def rows(self, ids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """Text and metadata of the chunks held of these ids, by id."""
        out: dict[str, tuple[str, dict[str, Any]]] = {}
        ids = list(ids)
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            for cid, text, meta in self.db.execute(
                    f"SELECT id, text, meta FROM chunks WHERE id IN "
                    f"({','.join('?' * len(part))})", part):
                out[cid] = (text, orjson.loads(meta))
        return out


    def stats(self) -> tuple[int, float]:
        """(number of chunks, their mean length in terms)."""
        docs = int(self._state("docs", 0))
        return docs, (int(self._state("length", 0)) / docs if docs else 0.0)

    def df(self, terms: Iterable[str]) -> dict[str, int]:
        terms = sorted(set(terms))
        if not terms:
            return {}
        return dict(self.db.execute(
            f"SELECT term, df FROM vocab WHERE term IN ({','.join('?' * len(terms))})", terms))

    def idf(self) -> Callable[[str], float]:
        """IDF of a stemmed term over every chunk (bm25s's formula; an unknown term gets
        the highest), memoised for one question over the library as it is now."""
        n_docs, _ = self.stats()
        top = math.log(1 + (n_docs + 0.5) / 0.5)
        seen: dict[str, float] = {}

        def idf(term: str) -> float:
            if term not in seen:
                df = self.df([term]).get(term)
                seen[term] = top if df is None else math.log(1 + (n_docs - df + 0.5) /
                                                             (df + 0.5))
            return seen[term]

        return idf

    def known(self) -> Callable[[str], bool]:
        """Whether a stemmed term occurs anywhere in the library."""
        seen: dict[str, bool] = {}

        def known(term: str) -> bool:
            if term not in seen:
                seen[term] = bool(self.df([term]))
            return seen[term]

        return known

    def search(self, query: str, top_k: int, keep: Callable[[dict[str, Any]], bool] | None
               = None) -> list[tuple[str, str, dict[str, Any], float]]:
        """The best `top_k` chunks for `query`, as (id, text, metadata, score), score > 0;
        `keep`: only chunks whose metadata it accepts (read best first, in growing
        batches, until `top_k` are kept)."""
        terms = Counter(query_terms(query))  # a repeated term counts again, as in bm25s
        if not terms or top_k <= 0 or not self.exists():
            return []
        ids, scores = self._scores(terms)
        found: list[tuple[int, str, dict[str, Any], float]] = []  # (rowid, id, meta, score)
        done, size = 0, (top_k if keep is None else max(top_k * 4, 100))
        while done < len(ids) and len(found) < top_k:
            upto = min(len(ids), done + size)
            best = (np.argpartition(-scores, upto - 1)[:upto] if upto < len(ids)
                    else np.arange(len(ids)))
            best = best[np.lexsort((ids[best], -scores[best]))][done:upto]  # ties: oldest
            pairs = [(int(ids[i]), float(scores[i])) for i in best]
            # metadata first: with a filter most rows are read only to be refused
            rows = {r[0]: r[1:] for r in self.db.execute(
                f"SELECT rowid, id, meta FROM chunks WHERE rowid IN "
                f"({','.join('?' * len(pairs))})", [p for p, _ in pairs])}
            for rowid, score in pairs:
                if rowid not in rows:  # removed: its postings wait for a merge
                    continue
                cid, meta_json = rows[rowid]
                meta = orjson.loads(meta_json)
                if keep is None or keep(meta):
                    found.append((rowid, cid, meta, score))
                    if len(found) >= top_k:
                        break
            done, size = upto, size * 4
        texts = dict(self.db.execute(
            f"SELECT rowid, text FROM chunks WHERE rowid IN ({','.join('?' * len(found))})",
            [r for r, *_ in found])) if found else {}
        return [(cid, texts[rowid], meta, score) for rowid, cid, meta, score in found]

    def _scores(self, terms: Counter[str]) -> tuple[np.ndarray, np.ndarray]:
        """(chunk rowids holding a query term, their BM25 scores): each term's packed
        postings read whole and scored in numpy (a query's terms' postings and nothing
        else; a common word's are a few MB at a million chunks)."""
        n_docs, avg = self.stats()
        docs, parts = [], []
        for term, d in self.df(terms).items():
            held = _postings(self.db, term)
            if not len(held):
                continue
            idf = math.log(1 + (n_docs - d + 0.5) / (d + 0.5))
            tf, dl = held["tf"].astype(np.float64), held["dl"].astype(np.float64)
            parts.append(terms[term] * idf * tf / (tf + K1 * (1 - B + B * dl / (avg or 1.0))))
            docs.append(held["doc"])
        if not docs:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        every, weights = np.concatenate(docs), np.concatenate(parts)
        if len(docs) == 1:
            return every.astype(np.int64), weights
        if len(every) < 65536:  # few: sort them; many: one dense slot per rowid
            ids, where = np.unique(every, return_inverse=True)
            return ids.astype(np.int64), np.bincount(where, weights=weights)
        dense = np.bincount(every, weights=weights)
        ids = np.flatnonzero(dense)
        return ids, dense[ids]

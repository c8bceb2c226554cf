"""Stores as the store and reliability tests make them: the shared corpora's paths (never
copied into the project), settings with nothing left to the environment, the ingest CLI
in a child, and the store's invariants (`assert_consistent`) and contents (`snapshot`)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from rag.settings import Settings
from rag.store.articles import ArticleStore
from support.servers import clean_env

CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"
SEED = CORPORA / "seed" / "iran-azerbaijan-baku-meeting.txt"
BBC = CORPORA / "bbc"
CATEGORIES = ("business", "entertainment", "politics", "sport", "tech")
COLLECTION = "lifecycle"
DEFAULT_MODEL = "local:all-MiniLM-L6-v2"


def bbc_files(per_category: int, start: int = 0) -> list[Path]:
    """A fixed sample: files start..start+per_category-1 (sorted) of every category."""
    out: list[Path] = []
    for category in CATEGORIES:
        out += sorted((BBC / category).glob("*.txt"))[start:start + per_category]
    return out


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Explicit values for everything the environment could otherwise change."""
    values: dict[str, Any] = {"data_dir": data_dir, "collection": COLLECTION,
                              "chroma_host": None, "embed_model": DEFAULT_MODEL}
    return Settings(**{**values, **overrides})


def cli_env(**extra: str) -> dict[str, str]:
    return clean_env(**extra)


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ingest", *args], cwd=cwd,
                          env=env or cli_env(), capture_output=True, text=True, timeout=timeout)


def assert_consistent(store: ArticleStore) -> None:
    """What recover() promises: no dirty records, no orphans, counts that agree."""
    assert store.articles.get(where={"dirty": True})["ids"] == []
    articles = {a.id: a for a in store.list_articles()}
    assert store.articles.count() == len(articles), "a record with no committed version"
    records = store.chunk_records()
    assert store.chunks.count() == len(records)
    orphans = [r["id"] for r in records if r["article_id"] not in articles
               or r["version"] != articles[r["article_id"]].version]
    assert orphans == []
    per_article = Counter(r["article_id"] for r in records)
    for aid, article in articles.items():
        assert per_article[aid] == article.chunks, article.title
    for aid in articles:
        text = store.get_article(aid).text
        rows = [r for r in records if r["article_id"] == aid]
        assert [r["chunk_index"] for r in rows] == list(range(len(rows)))
        for r in rows:
            assert r["id"] == f"{aid}:{r['version']}:{r['chunk_index']}"
            assert text[r["start"]:r["end"]] == r["text"]


def snapshot(store: ArticleStore) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """Everything a run decides (not timestamps): articles and chunks by id."""
    articles = {}
    for listed in store.list_articles():
        a = store.get_article(listed.id)
        articles[a.id] = (a.title, a.version, a.chunks, tuple(a.paths), a.published,
                          tuple(a.authors), a.url, a.outlet, a.text)
    chunks = {
        r["id"]: (r["article_id"], r["version"], r["chunk_index"], r["start"], r["end"],
                  r["paragraph"], r["paragraph_end"], r.get("path"), r["title"], r["text"])
        for r in store.chunk_records()
    }
    return articles, chunks

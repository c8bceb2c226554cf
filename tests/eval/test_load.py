"""The load benchmark at CI size: the app answers 4 users while a CLI ingest writes the
same store from another process, and afterwards nothing is lost (eval/bench_load.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval import bench_load
from rag.settings import Settings
from rag.store.articles import ArticleStore
from rag.store.health import check_store

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword)")


@pytest.mark.slow
def test_app_answers_under_load_while_the_cli_ingests(tmp_path: Path) -> None:
    data = tmp_path / "data"
    got = bench_load.run(users=4, seconds=20, ingest=20, data_dir=data)
    assert got["errors"] == 0, got["error_messages"]
    assert got["requests"] > 0
    assert got["cli_exit"] == 0, got["cli_stderr"]
    assert got["cli_failed"] == 0 and got["seed_failed"] == []
    # The seed and 40 BBC articles, then 20 more, less any duplicate texts (one article).
    assert got["seed_articles"] == got["seed_added"] <= 1 + bench_load.FIRST_BBC
    assert got["cli_added"] + got["cli_updated"] + got["cli_unchanged"] == 20

    store = ArticleStore(Settings(data_dir=data, collection=bench_load.COLLECTION))
    assert len(store.list_articles()) == got["seed_added"] + got["cli_added"]
    health = check_store(store)
    assert health.ok, health.report()

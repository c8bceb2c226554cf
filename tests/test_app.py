"""The interim app page: it builds, lists the library and searches passages."""

from __future__ import annotations

from pathlib import Path

import pytest

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


@pytest.fixture()
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import app
    from rag.settings import Settings

    monkeypatch.setattr(app, "settings", Settings(data_dir=tmp_path, collection="apptest"))
    return app


def test_empty_library_says_how_to_add(app_module) -> None:
    assert app_module.library_rows() == []
    assert "python -m ingest" in app_module.search("why did relations sour?", 3)
    assert app_module.build() is not None


def test_search_finds_the_seed_passage(app_module) -> None:
    from ingest.pipeline import ingest
    from rag.store import ArticleStore

    store = ArticleStore(app_module.settings)
    ingest([str(CORPORA / "seed")], store, app_module.settings, progress=False)
    rows = app_module.library_rows()
    assert rows[0][0].startswith("Iranian president Pezeshkian")
    out = app_module.search("embassy attack in Tehran", 2)
    assert "embassy" in out and "Iranian president Pezeshkian" in out

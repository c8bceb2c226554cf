"""Run a question set through the engine (the app's own code path) per configuration."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval.qa import QAItem
from eval.scoring import Gold, resolve_gold
from ingest.pipeline import ingest
from rag.answer.draft.llm import llm_configured
from rag.answer.engine import Engine
from rag.answer.request import Ask
from rag.answer.retrieve import Filters
from rag.errors import StoreError
from rag.settings import Settings
from rag.store.articles import ArticleStore
from rag.types import Answer, AnswerMode, RetrievalMode


@dataclass(frozen=True)
class Config:
    name: str
    retrieval: RetrievalMode
    mode: AnswerMode


CONFIGS = {
    "hybrid": Config("hybrid", RetrievalMode.HYBRID, AnswerMode.EXTRACTIVE),
    "dense": Config("dense", RetrievalMode.DENSE, AnswerMode.EXTRACTIVE),
    "bm25": Config("bm25", RetrievalMode.BM25, AnswerMode.EXTRACTIVE),
    "llm": Config("llm", RetrievalMode.HYBRID, AnswerMode.LLM),
}
DEFAULT_CONFIGS = ("hybrid", "dense", "bm25")

logger = logging.getLogger(__name__)


def default_configs(settings: Settings) -> list[str]:
    return [*DEFAULT_CONFIGS, "llm"] if llm_configured(settings) else list(DEFAULT_CONFIGS)


def eval_settings(base: Settings, corpus: Path, data_dir: Path | None,
                  collection: str | None) -> Settings:
    """The evaluation store: its own folder and a collection named after the corpus, so
    evaluating never touches the user's library and another corpus never mixes in."""
    corpus_key = hashlib.sha256(str(corpus.resolve()).encode()).hexdigest()[:8]
    return base.override(
        data_dir=(data_dir or base.data_dir / "eval").resolve(),
        collection=collection or f"eval-{corpus.resolve().name[:30]}-{corpus_key}",
    )


def prepare_store(settings: Settings, corpus: Path, do_ingest: bool = True,
                  progress: bool = True) -> ArticleStore:
    store = ArticleStore(settings)
    if do_ingest:
        report = ingest([str(corpus)], store, settings, progress=progress)
        if progress:
            print(f"evaluation store: {report.summary().splitlines()[0]}")
    if not store.has_chunks():
        raise StoreError(f"the evaluation store {settings.collection!r} is empty")
    return store


def accepts_as_of(request: type = Ask) -> bool:
    """Whether the engine's request (`Ask`) has an `as_of` field: dated sets run on
    engines from before dated answers too."""
    return dataclasses.is_dataclass(request) and "as_of" in {
        f.name for f in dataclasses.fields(request)}


def picked(answer: Answer, article_id: str) -> dict[str, Any]:
    """What picking one offered story gave: whether it answered, and from which articles."""
    return {"article_id": article_id, "refused": answer.refused or bool(answer.clarify),
            "cited": [c.article_id for c in answer.citations]}


def left_out(items: list[QAItem], store: ArticleStore, corpus: Path,
             golds: dict[str, Gold] | None = None
             ) -> tuple[list[QAItem], dict[str, Filters]]:
    """Each answerable question made unanswerable with its topic still in the library:
    asked with its gold articles and their stories (copies, versions) left out of the
    search. Returns the questions (id `<id>~left-out`, no source) and their filters.
    `golds`: the items' `resolve_gold`, when the caller has it already."""
    golds = golds if golds is not None else resolve_gold(items, store, corpus)
    stories = {a.id: a.story for a in store.list_articles()}
    out, filters = [], {}
    for item in items:
        gold = golds.get(item.id)
        if gold is None or not gold.article_ids:
            continue
        story = {stories.get(a) for a in gold.article_ids} - {None}
        left = sorted(gold.article_ids | {a for a, s in stories.items() if s in story})
        copy = QAItem(id=f"{item.id}~left-out", question=item.question, type="unanswerable",
                      history=item.history, as_of=item.as_of, split=item.split)
        out.append(copy)
        filters[copy.id] = Filters(exclude_ids=left)
    return out, filters


def run(items: list[QAItem], engine: Engine, configs: list[Config], top_k: int = 10,
        progress: bool = True, on_record: Callable[[dict[str, Any]], None] | None = None,
        filters: dict[str, Filters] | None = None) -> list[dict[str, Any]]:
    """One record per question and configuration: the id, the config, the full result.
    A dated question is asked as of its `as_of` day, when the engine takes one. A
    question asked back is asked again about each story offered (`picked`): a story
    offered that does not answer when picked should not have been offered. `filters`:
    a question's search restriction, by its id (`left_out`)."""
    records: list[dict[str, Any]] = []
    dated = accepts_as_of()
    if not dated and any(item.as_of for item in items):
        logger.warning("the engine takes no as_of: dated questions are asked as of today, "
                       "so relative dates (\"last week\") resolve against today")
    total = len(items) * len(configs)
    with tqdm(total=total, disable=not progress, unit="q", desc="evaluating") as bar:
        for config in configs:
            for item in items:
                asked = Ask(item.question, history=item.history or None, mode=config.mode,
                            retrieval=config.retrieval, top_k=top_k,
                            filters=(filters or {}).get(item.id),
                            as_of=item.as_of_date if dated and item.as_of else None)
                result = engine.ask(asked)
                record = {"id": item.id, "config": config.name, "result": result.to_json()}
                if result.clarify:
                    record["picked"] = [
                        picked(engine.ask(dataclasses.replace(asked, question=choice.question)),
                               choice.article_id)
                        for choice in result.clarify]
                records.append(record)
                if on_record:
                    on_record(record)
                bar.update(1)
                bar.set_postfix(config=config.name, refresh=False)
    return records

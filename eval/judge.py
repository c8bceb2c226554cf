"""LLM-judged metrics (faithfulness, relevancy, correctness) via llama-index's evaluators.

Only with a model configured; otherwise the report says "skipped: no judge".
"""

from __future__ import annotations

import logging
from typing import Any

from tqdm import tqdm

from eval.qa import QAItem
from rag.answer.draft.llm import build_llm, describe_error, llm_configured
from rag.settings import Settings

NO_JUDGE = "skipped: no judge"

logger = logging.getLogger(__name__)


def judge(items: list[QAItem], records: list[dict[str, Any]], settings: Settings,
          store: Any, progress: bool = True) -> tuple[dict[tuple[str, str], dict[str, float]],
                                                      str | None]:
    """Scores per (question id, config), and a note when judging was skipped or failed."""
    if not llm_configured(settings):
        return {}, NO_JUDGE
    from llama_index.core.evaluation import (
        CorrectnessEvaluator,
        FaithfulnessEvaluator,
        RelevancyEvaluator,
    )

    llm = build_llm(settings)
    faithfulness = FaithfulnessEvaluator(llm=llm)
    relevancy = RelevancyEvaluator(llm=llm)
    correctness = CorrectnessEvaluator(llm=llm)
    by_id = {item.id: item for item in items}
    out: dict[tuple[str, str], dict[str, float]] = {}
    failures = 0
    for record in tqdm(records, disable=not progress, desc="judging", unit="q"):
        item, result = by_id[record["id"]], record["result"]
        if result["refused"] or not item.answerable:
            continue
        contexts = [c["quote"] for c in result["citations"]] or [""]
        scores: dict[str, float] = {}
        try:
            scores["faithfulness"] = float(faithfulness.evaluate(
                query=item.question, response=result["answer"], contexts=contexts).passing)
            scores["relevancy"] = float(relevancy.evaluate(
                query=item.question, response=result["answer"], contexts=contexts).passing)
            reference = ("; ".join(item.answers) or item.evidence
                         or " ".join(e["evidence"] for e in item.timeline or []))
            if reference:
                got = correctness.evaluate(query=item.question, response=result["answer"],
                                           reference=reference)
                scores["correctness"] = (got.score or 0.0) / 5.0
        except Exception as exc:  # the judge failing must not lose the deterministic report
            failures += 1
            if failures == 1:  # the report counts the rest
                logger.warning("judge: %s", describe_error(exc, settings))
            logger.debug("judging %s (%s) failed", record["id"], record["config"], exc_info=True)
            continue
        out[(record["id"], record["config"])] = scores
    note = f"judge failed on {failures} answers" if failures else None
    return out, note

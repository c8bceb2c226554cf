"""Question sets: the JSONL format, its validation, and the seeded generated set."""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ingest.readers import decode_text
from ingest.textparse import parse_text
from rag.text import sentence_spans

TYPES = ("factoid", "why", "how", "numeric", "date", "who", "unanswerable", "followup", "cloze",
         "vague")  # vague: names no subject; `source` is one story it fits



class DatasetError(ValueError):
    pass


@dataclass
class QAItem:
    id: str
    question: str
    answers: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    source: str | None = None  # gold article, relative to the corpus root
    evidence: str | None = None
    type: str = "factoid"
    history: list[dict[str, str]] = field(default_factory=list)

    @property
    def answerable(self) -> bool:
        return self.source is not None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.history:
            del out["history"]
        return out


def load(path: Path) -> list[QAItem]:
    """Read and check a dataset; every problem names its line."""
    items: list[QAItem] = []
    seen: set[str] = set()
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            item = QAItem(**{k: raw[k] for k in raw if k in QAItem.__dataclass_fields__})
        except (json.JSONDecodeError, TypeError) as exc:
            raise DatasetError(f"{path}:{number}: not a question object ({exc})") from exc
        if not item.id or not item.question:
            raise DatasetError(f"{path}:{number}: 'id' and 'question' are required")
        if item.id in seen:
            raise DatasetError(f"{path}:{number}: duplicate id {item.id!r}")
        if item.type not in TYPES:
            raise DatasetError(f"{path}:{number}: unknown type {item.type!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise DatasetError(f"{path}: no questions")
    return items


def generate_cloze(corpus: Path, n: int, seed: int = 13) -> list[QAItem]:
    """Inverse-cloze retrieval questions: a body sentence of an article is the query,
    that article the answer. Deterministic for a given corpus, n and seed.

    Articles whose text repeats another's are skipped: their gold would be ambiguous.
    """
    files = sorted(p for p in Path(corpus).rglob("*.txt")
                   if not p.name.lower().startswith(("readme", "license")))
    bodies: dict[str, str] = {}
    for file in files:
        text, _ = decode_text(file.read_bytes())
        body = parse_text(text).body
        bodies[str(file.relative_to(corpus))] = body
    counts: dict[str, int] = {}
    for body in bodies.values():
        key = " ".join(body.split())[:400]
        counts[key] = counts.get(key, 0) + 1
    unique = [rel for rel, body in bodies.items() if counts[" ".join(body.split())[:400]] == 1]
    rng = random.Random(seed)
    rng.shuffle(unique)
    items: list[QAItem] = []
    for rel in unique:
        body = bodies[rel]
        spans = sentence_spans(body)[1:]  # not the lead, which often restates the headline
        choices = [body[a:b] for a, b in spans if 10 <= len(body[a:b].split()) <= 40
                   and not re.search(r"[\"“”]", body[a:b])]
        if not choices:
            continue
        sentence = rng.choice(choices)
        items.append(QAItem(id=f"cloze-{len(items) + 1:04d}", question=_thin(sentence, rng),
                            source=rel, evidence=sentence, type="cloze"))
        if len(items) == n:
            break
    return items


def _thin(sentence: str, rng: random.Random, keep: float = 0.6) -> str:
    """The sentence's content words, a seeded 40% of them dropped: a query that still
    points at the sentence without quoting it whole (which BM25 would find trivially)."""
    from rag.text import STOPWORDS

    words = [w for w in re.findall(r"[\w'’%$£.-]+", sentence)
             if w.lower().strip(".") not in STOPWORDS]
    kept = [w.strip(".") for w in words if rng.random() < keep]
    return " ".join(kept or words[:3])


def write(items: list[QAItem], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")


def split(items: list[QAItem], seed: int, dev_share: float = 0.5
          ) -> tuple[list[QAItem], list[QAItem]]:
    """A seeded dev/test split, stratified by type so both halves have every kind."""
    rng = random.Random(seed)
    dev: list[QAItem] = []
    test: list[QAItem] = []
    for kind in dict.fromkeys(i.type for i in items):
        group = [i for i in items if i.type == kind]
        rng.shuffle(group)
        cut = round(len(group) * dev_share)
        dev += group[:cut]
        test += group[cut:]
    order = {i.id: n for n, i in enumerate(items)}
    return sorted(dev, key=lambda i: order[i.id]), sorted(test, key=lambda i: order[i.id])


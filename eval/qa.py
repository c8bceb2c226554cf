"""Question sets: the JSONL format, its validation, and the seeded generated set."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ingest.formats import decode_text
from ingest.textparse import parse_text
from rag.errors import UsageError
from rag.text import sentence_spans

TYPES = ("factoid", "why", "how", "numeric", "date", "who", "unanswerable", "followup", "cloze",
         "vague",  # vague: names no subject; `source` is one story it fits
         # dated sets: "when" questions, "what is the latest", how a story developed, and a
         # year that names the topic ("the 2023 inquiry") rather than a date range
         "temporal", "latest", "timeline", "topic_year")
SPLITS = ("dev", "test")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class DatasetError(UsageError):
    pass


@dataclass
class QAItem:
    id: str
    question: str
    answers: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    source: str | None = None  # gold article: relative to the corpus root, or its URL
    evidence: str | None = None
    type: str = "factoid"
    history: list[dict[str, str]] = field(default_factory=list)
    # Dated sets only (absent from older ones):
    as_of: str | None = None  # ISO day the question is asked on ("last week" is read from it)
    date: str | None = None  # ISO day a "when" question's answer names
    filter: dict[str, str | None] | None = None  # {"start", "end"}: the range the question means
    timeline: list[dict[str, str]] | None = None  # [{"date", "evidence", "source"}], oldest first
    split: str | None = None  # "dev" or "test"
    # `filter: null` says "the question implies no range" and is scored; a set without the
    # key is not: the loader records whether the key was there.
    has_filter: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.has_filter = self.has_filter or self.filter is not None

    @property
    def answerable(self) -> bool:
        """A gold article, or a timeline whose events name theirs."""
        return self.source is not None or bool(self.timeline)

    @property
    def as_of_date(self) -> dt.date | None:
        return dt.date.fromisoformat(self.as_of) if self.as_of else None

    def to_json(self) -> dict[str, Any]:
        """The dataset line; the dated fields only where given, so older sets round-trip."""
        out = asdict(self)
        del out["has_filter"]
        if not self.history:
            del out["history"]
        for key in _DATED_FIELDS:
            if out[key] is None and not (key == "filter" and self.has_filter):
                del out[key]
        return out


_DATED_FIELDS = ("as_of", "date", "filter", "timeline", "split")
_FIELDS = set(QAItem.__dataclass_fields__) - {"has_filter"}


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def url_key(url: str) -> str:
    """One spelling of a URL for matching a gold source to a citation: scheme, a trailing
    slash and the fragment do not tell two articles apart."""
    parts = urlsplit(url.strip())
    key = parts.netloc.lower() + parts.path.rstrip("/")
    return f"{key}?{parts.query}" if parts.query else key


def load(path: Path) -> list[QAItem]:
    """Read and check a dataset; every problem names its line."""
    items: list[QAItem] = []
    seen: set[str] = set()
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            item = QAItem(**{k: raw[k] for k in raw if k in _FIELDS},
                          has_filter="filter" in raw)
        except (json.JSONDecodeError, TypeError) as exc:
            raise DatasetError(f"{path}:{number}: not a question object ({exc})") from exc
        if not item.id or not item.question:
            raise DatasetError(f"{path}:{number}: 'id' and 'question' are required")
        if item.id in seen:
            raise DatasetError(f"{path}:{number}: duplicate id {item.id!r}")
        if item.type not in TYPES:
            raise DatasetError(f"{path}:{number}: unknown type {item.type!r}")
        problem = _dated_problem(item)
        if problem:
            raise DatasetError(f"{path}:{number}: {problem}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise DatasetError(f"{path}: no questions")
    return items


def _iso_problem(name: str, value: object, nullable: bool = True) -> str | None:
    if value is None and nullable:
        return None
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            dt.date.fromisoformat(value)
            return None
        except ValueError:
            pass
    return f"{name} must be an ISO date (YYYY-MM-DD), not {value!r}"


def _dated_problem(item: QAItem) -> str | None:
    """What is wrong with the dated fields, if anything: checked on load so a typo in a
    date fails the run up front instead of silently scoring every answer wrong."""
    problems = [_iso_problem("as_of", item.as_of), _iso_problem("date", item.date)]
    if item.filter is not None:
        if not isinstance(item.filter, dict) or set(item.filter) != {"start", "end"}:
            return f"filter must be null or {{\"start\": ..., \"end\": ...}}, not {item.filter!r}"
        start, end = item.filter["start"], item.filter["end"]
        problems += [_iso_problem("filter.start", start), _iso_problem("filter.end", end)]
        if start is None and end is None:
            problems.append("filter needs a start or an end (no range is spelled null)")
        elif start and end and not any(problems) and start > end:
            problems.append(f"filter starts after it ends ({start} > {end})")
    if item.timeline is not None:
        if not isinstance(item.timeline, list) or not item.timeline:
            return "timeline must be null or a non-empty list of events"
        for n, event in enumerate(item.timeline):
            if not isinstance(event, dict) or set(event) != {"date", "evidence", "source"}:
                return f"timeline[{n}] must be {{\"date\", \"evidence\", \"source\"}}"
            problems.append(_iso_problem(f"timeline[{n}].date", event["date"], nullable=False))
            if not (isinstance(event["evidence"], str) and event["evidence"].strip()
                    and isinstance(event["source"], str) and event["source"].strip()):
                problems.append(f"timeline[{n}] needs an evidence sentence and a source")
        dates = [e["date"] for e in item.timeline]
        if not any(problems) and dates != sorted(dates):
            problems.append("timeline events must be in date order, oldest first")
    if item.type == "timeline" and not item.timeline:
        problems.append("a timeline question needs a timeline")
    if item.type == "latest" and not item.source:
        problems.append("a latest question needs the latest article as its source")
    if item.split is not None and item.split not in SPLITS:
        problems.append(f"split must be one of {', '.join(SPLITS)}, not {item.split!r}")
    return next((p for p in problems if p), None)


def select_split(items: list[QAItem], split: str) -> list[QAItem]:
    """The items of one split; a set without splits is an error, not an empty run."""
    if all(item.split is None for item in items):
        raise DatasetError(f"--split {split}: the dataset has no split field")
    return [item for item in items if item.split == split]


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


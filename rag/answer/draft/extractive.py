"""The offline answerer: the retrieved sentences that best answer the question, verbatim.

No library composes a cited extractive answer, so this is ours. The picker measures
each candidate sentence on meaning (MiniLM similarity to the question), on the
question's rare words it contains (IDF from the BM25 index), on its passage's rank,
and on whether it has what the question type asks for (a cause for "why", a date for
"when", a number for "how many"); a reader (`rag.answer.readers.base`) chooses among them. The
heuristic reader here scores those measures and keeps the best few, minus
near-repeats; when even the best sentence is weak, it refuses. The chosen sentences
are put back in article order.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from rag.answer.clarify import Stories, wants_several
from rag.answer.readers.base import Candidate, Pick, Question, Reader, Reading
from rag.answer.retrieve import dated_within
from rag.dates.parse import DateFilter
from rag.dates.plan import without_dates
from rag.store.expansion import related_stems
from rag.text import content_terms, numbers, sentence_spans
from rag.types import Claim, Draft, Passage, Span

_CAUSE = re.compile(
    r"\b(because|due to|driven|after|as a result|amid|led to|leading to|caused|causing|"
    r"following|the reason|blam\w*|trigger\w*|escalat\w*|sparked|prompt\w*|"
    r"in the wake of|stemm\w* from|fuel\w*)\b",
    re.I,
)
_DATE = re.compile(
    r"\b(1[89]\d\d|20\d\d|january|february|march|april|may|june|july|august|september|"
    r"october|november|december|monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    r"yesterday|today|last (?:week|month|year))\b",
    re.I,
)
_NUMBER = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|hundred|"
                     r"thousand|million|billion|dozen)\b", re.I)
_MANNER = re.compile(r"\b(by|through|using|via|thanks to|with the help of|in order to|"
                     r"plans? to|will|would)\b", re.I)
# A chunk cut mid-sentence starts with a lower-case word ("won the men's event...").
_MID_SENTENCE = re.compile(r"^[\"“‘'(\[]*[a-z]")
# What holding the asked-for kind of thing adds to a sentence's score.
_TYPE_BONUS = {"numeric": 0.15, "when": 0.15, "who": 0.12, "which": 0.15, "why": 0.1,
               "how": 0.04}


def question_type(question: str) -> str:
    q = question.lower().strip()
    if re.match(r"^(and\s+)?why\b|\bwhat (caused|led to|is the reason)\b|\breasons?\b", q):
        return "why"
    if re.match(r"^(and\s+)?when\b|\bwhat (date|year|day|time)\b", q):
        return "when"
    if re.search(r"\bhow (many|much|long|old|big|large|far)\b|\bwhat (percentage|share|"
                 r"amount|number|proportion)\b", q):
        return "numeric"
    if re.match(r"^(and\s+)?(who|whom|whose)\b", q):
        return "who"
    if re.match(r"^(and\s+)?how\b", q):
        return "how"
    if re.match(r"^(and\s+)?(which|what)\s+(\w+\s+){0,2}(feature|company|firm|country|team|"
                r"party|product|film|show|player|club|city|name|group|law|plan|drug|"
                r"substance|award|prize)\b", q):
        return "which"
    return "what"


class HeuristicReader:
    """The reader that needs no model: a weighted score of the picker's measures, a
    refusal when even the best sentence is weak, and the best few sentences of one
    story, minus near-repeats. The weights and thresholds were calibrated on answerable
    and unanswerable questions over the seed and BBC articles (dev halves only)."""

    name = "heuristic"
    # An answer needs a sentence that covers most of the question's weighted words
    # (in the sentence or its passage), or one very close in meaning.
    min_coverage = 0.6
    min_dense = 0.55

    def __init__(self, max_sentences: int = 4) -> None:
        self.max_sentences = max_sentences

    @staticmethod
    def topical(cand: Candidate) -> float:
        """How well a sentence matches the question's words; one holding the asked-for
        kind of thing also counts its neighbours' match (most of it)."""
        return max(cand.lexical, 0.8 * cand.context) if cand.typed else cand.lexical

    def score(self, cand: Candidate, kind: str) -> float:
        prior = 1.0 / (1.0 + 0.25 * cand.passage)  # the passage's retrieval rank
        return (0.4 * cand.dense + 0.4 * self.topical(cand) + 0.1 * prior
                + (_TYPE_BONUS.get(kind, 0.0) if cand.typed else 0.0)
                - (0.12 if cand.novelty < 0.3 else 0.0))  # says only what was asked

    def rank(self, question: Question, candidates: list[Candidate]) -> list[Pick]:
        """Every candidate with its score, best first (another reader's shortlist)."""
        picks = [Pick(c, self.score(c, question.kind)) for c in candidates]
        return sorted(picks, key=lambda p: -p.score)

    def passes_gates(self, question: Question, candidates: list[Candidate],
                     offered: bool = False) -> bool:
        """Whether the candidates pass the gates any answer must pass (the model reader
        vetoes only what these let through), without choosing sentences: cheap enough
        to ask of each story a question back might offer. `offered`: a story offered
        back must also hold a cause for "why" and a manner for "how" where it matches
        the question; a review with "life turning sour" in it would answer "why did
        relations sour?" with that line, but is no story to offer for it."""
        if not candidates:
            return False
        best_dense = max(c.dense for c in candidates)
        best_cover = max(c.lexical for c in candidates)
        if best_cover < self.min_coverage and best_dense < self.min_dense:
            return False
        # A question that asks for a number, date or name is not answered by passages on
        # its topic that hold none: "How much did X pay?" needs a sum somewhere relevant.
        kind, text = question.kind, question.text
        relevant = [c for c in candidates if c.lexical >= 0.5 or c.dense >= self.min_dense]
        if offered and kind in ("why", "how"):
            return any(c.typed for c in relevant)
        return kind not in _TYPED or any(_has_type(kind, c.text, text) for c in relevant)

    def warm(self) -> None:
        """Nothing to load: the measures come from the picker."""

    def read(self, question: Question, candidates: list[Candidate]) -> Reading:
        if not self.passes_gates(question, candidates):
            return Reading(reader=self.name)
        return Reading(picks=self.select(self.rank(question, candidates), question),
                       reader=self.name)

    def select(self, ranked: list[Pick], question: Question) -> list[Pick]:
        """The answer's sentences from candidates ranked best first (by this reader or
        another): one story, the best few within 0.8 of the best score, no near-repeats,
        and a sentence with the asked-for figure, date or name if none has it."""
        passages, kind = question.passages, question.kind
        # One story per answer: sentences of other articles join only when those tell
        # the same story, unless the question asks for a comparison or an overview.
        stories = Stories(passages)
        lead = passages[ranked[0].candidate.passage].article_id
        if not wants_several(question.text):
            ranked = [p for p in ranked
                      if stories.same(lead, passages[p.candidate.passage].article_id)]
        top = ranked[0].score
        limit = self.max_sentences if kind in ("why", "how", "what") else 3
        chosen: list[Pick] = []
        for pick in ranked:
            if len(chosen) == limit:
                break
            if chosen and pick.score < 0.8 * top:
                break
            if any(float(pick.candidate.vector @ c.candidate.vector) > 0.85 for c in chosen):
                continue  # says again what a chosen sentence says
            chosen.append(pick)
        # The best sentences may set the scene without the figure, date or name asked
        # for; then the best sentence that has it joins them (it is usually next door).
        if kind in _TYPED and not any(p.candidate.typed for p in chosen):
            typed = [p for p in ranked if p not in chosen and p.score >= 0.6 * top
                     and p.candidate.typed]
            if typed:
                chosen = [*chosen[: limit - 1], typed[0]]
        return chosen


class SentencePicker:
    """Candidate sentences of the passages, measured; a `Reader` chooses among them.

    What stays here is what every reader needs: the sentences that could be answers
    (no headings, fragments or repeats), the cheap checks that no passage can answer
    (a year or a name the question turns on that none mentions), the measures, and
    the chosen sentences put back in reading order as claims carrying their spans."""

    max_candidates = 32

    def __init__(self, embed_model, idf: Callable[[str], float] | None = None,  # noqa: ANN001
                 known: Callable[[str], bool] | None = None,
                 reader: Reader | None = None) -> None:
        self.embed_model = embed_model
        self.idf = idf or (lambda term: 1.0)
        self.known = known or (lambda term: True)  # is a stemmed term in the library at all
        self.reader: Reader = reader or HeuristicReader()

    def answer(self, question: str, passages: list[Passage],
               window: DateFilter | None = None) -> Draft:
        """`window`: the date filter the question's dates became, if one was applied.
        A passage it kept for its dates (published then, or speaking of a day then)
        need not hold the words of its phrase ("in 2024", "in March", "last week"): an
        article of 2024 seldom says "2024". A passage it kept only because nothing
        dates it still must, or an undated archive would answer any year's question."""
        candidates = self.candidates(question, passages, window)
        if not candidates:
            return Draft(refused=True)
        asked = Question(text=question, kind=question_type(question), passages=passages)
        reading = self.reader.read(asked, candidates)
        if reading.refused:
            return Draft(refused=True)
        # Back in reading order: articles by their best sentence's rank, then position.
        rank_of_passage: dict[str, int] = {}
        for i, pick in enumerate(reading.picks):
            rank_of_passage.setdefault(passages[pick.candidate.passage].article_id, i)
        picks = sorted(reading.picks, key=lambda p: (
            rank_of_passage[passages[p.candidate.passage].article_id],
            passages[p.candidate.passage].start + p.candidate.start))
        return Draft(claims=[claim_of(p, passages) for p in picks])

    def could_answer(self, question: str, passages: list[Passage],
                     window: DateFilter | None = None) -> bool:
        """Whether a reader asked over these passages alone could answer, as a story
        offered back must: the picker's checks and the reader's gates, which every
        answer of that reader passes, with no sentence chosen or read by a model
        (`Reader.passes_gates`)."""
        asked = Question(text=question, kind=question_type(question), passages=passages)
        return self.reader.passes_gates(asked, self.candidates(question, passages, window),
                                        offered=True)

    def candidates(self, question: str, passages: list[Passage],
                   window: DateFilter | None = None) -> list[Candidate]:
        """The measured candidates, or none when the passages cannot answer."""
        candidates = self._sentences(passages)
        # The passages the filter kept for their dates are asked the question without
        # its date phrase; the others, the whole question.
        dated = {i for i, p in enumerate(passages)
                 if window is not None and dated_within(window, p)}
        short = without_dates(question, window) if window is not None and dated else question
        if (not candidates or _missing_question_numbers(short, passages)
                or _missing_names(short, passages, self.known)):
            return []
        q_terms = list(dict.fromkeys(content_terms(question)))
        kind = question_type(question)
        weights = {t: self.idf(t) for t in q_terms}
        kept = set(content_terms(short))
        weights_dated = {t: w for t, w in weights.items() if t in kept}
        asked = set(q_terms) | {r for t in q_terms for r in related_stems(t)}
        passage_terms = [set(content_terms(p.text)) for p in passages]
        for cand in candidates:
            terms = set(content_terms(cand.text))
            wanted = weights_dated if cand.passage in dated else weights
            cand.lexical = coverage(wanted, terms, passage_terms[cand.passage])
            cand.own = coverage(wanted, terms, set())
            cand.novelty = len(terms - asked) / max(len(terms), 1)
            cand.typed = _holds_answer(kind, cand.text, question)
        # The answer is often the sentence after (or before) the one that restates the
        # question: a sentence holding the asked-for kind of thing borrows its
        # neighbours' match on the question's words.
        for prev, cand, nxt in zip([None, *candidates[:-1]], candidates, [*candidates[1:], None],
                                   strict=True):
            near = [n.own for n in (prev, nxt) if n is not None and n.passage == cand.passage]
            cand.context = max(near, default=0.0)
        # Embedding every sentence of every passage is most of the answer's time; those
        # far down on words and passage rank are never chosen, so they are not embedded.
        candidates.sort(key=lambda c: -(HeuristicReader.topical(c)
                                        + 0.3 / (1.0 + 0.25 * c.passage)))
        candidates = candidates[: self.max_candidates]
        vectors = np.asarray(self.embed_model.get_text_embedding_batch(
            [question, *(c.text for c in candidates)]))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
        qvec, svecs = vectors[0], vectors[1:]
        for cand, vec in zip(candidates, svecs, strict=True):
            cand.dense = float(vec @ qvec)
            cand.vector = vec
        return candidates

    def _sentences(self, passages: list[Passage]) -> list[Candidate]:
        seen: set[str] = set()
        out: list[Candidate] = []
        for i, passage in enumerate(passages):
            for start, end in sentence_spans(passage.text):
                text = passage.text[start:end]
                key = " ".join(text.lower().split())
                # Headings and fragments are not answers; overlapping chunks repeat sentences.
                # A chunk may begin mid-sentence: such a start is no sentence's start.
                if (key in seen or len(text.split()) < 5 or not re.search(r"[.!?\"”’)]$", text)
                        or _MID_SENTENCE.match(text)):
                    continue
                seen.add(key)
                out.append(Candidate(i, start, end, text))
        return out


def claim_of(pick: Pick, passages: list[Passage]) -> Claim:
    """A chosen sentence as a claim that carries where it is (so the citation need not
    find it again by its text) and how sure the reader was."""
    cand, passage = pick.candidate, passages[pick.candidate.passage]
    span = Span(passage=cand.passage, start=passage.start + cand.start,
                end=passage.start + cand.end)
    return Claim(text=cand.text, passages=[cand.passage + 1], span=span,
                 score=round(pick.score, 4))


def coverage(weights: dict[str, float], sentence: set[str], passage: set[str]) -> float:
    """IDF-weighted share of the question's terms the sentence holds: its own word
    counts 1, a related news word (`rag.store.expansion`) 0.6, either only elsewhere in the
    passage 0.7 of that."""
    total = sum(weights.values())
    if not total:
        return 0.0
    got = 0.0
    for term, weight in weights.items():
        related = related_stems(term)
        if term in sentence:
            got += weight
        elif related & sentence:
            got += 0.6 * weight
        elif term in passage:
            got += 0.7 * weight
        elif related & passage:
            got += 0.42 * weight
    return got / total


_TYPED = ("numeric", "when", "who", "which")
# A question about a sum of money, and what a sum looks like in news copy.
_MONEY_QUESTION = re.compile(
    r"\bhow much (money\b|.*\b(pay|paid|cost|costs|costing|charge|charged|spend|spent|raise|"
    r"raised|earn|earned|worth|sell|sold|fetch|fetched|bid|fine|fined|invest|invested|owe|"
    r"owed)\b)|\b(price|fee|salary|budget|valuation|fine)\b.*\?$", re.I)
_MONEY = re.compile(r"[£$€¥]\s?\d|\b\d+p\b|\b\d[\d,.]*\s?(m|bn|k|million|billion|thousand)?\s?"
                    r"(pence|cents?|dollars?|pounds?|euros?|yen)\b", re.I)


def _has_type(kind: str, text: str, question: str) -> bool:
    """Does the sentence hold the kind of thing the question asks for?"""
    if kind == "numeric":
        if _MONEY_QUESTION.search(question):  # "how much did X pay": a sum, not a count
            return bool(_MONEY.search(text))
        return bool(re.search(r"\d", text) or _NUMBER.search(text))
    if kind == "when":
        return bool(_DATE.search(text))
    asked = {w.lower() for w in re.findall(r"[A-Za-z][\w'’-]*", question)}
    names = re.findall(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*)*", text)
    # A sentence may open with a full name ("Pranab Mukherjee said..."): two capitalised
    # words at its start are a name, one alone may just be the sentence's first word.
    opening = re.match(r"[A-Z][\w'’-]+(?:\s+[A-Z][\w'’-]+)+", text)
    if opening:
        names.append(opening.group(0))
    return any(any(w.lower() not in asked for w in name.split()) for name in names)


def _missing_names(question: str, passages: list[Passage],
                   known: Callable[[str], bool]) -> bool:
    """A name the question turns on (a capitalised word past its first) that no passage
    mentions and the whole library never uses: the articles are about something else.
    (A name the library knows but these passages lack, like "Britain" against "UK",
    is left to the other checks.)"""
    words = re.findall(r"[A-Za-z][\w-]*", question.replace("’", "'"))[1:]
    names = [w for w in words if w[:1].isupper() and len(w) > 2
             and w.lower() not in _NOT_NAMES]
    text = " ".join(p.text + " " + p.title for p in passages).lower()
    # A shared start is enough: "Azeris" is found by "Azerbaijani".
    return any(name[:4].lower() not in text and not any(known(t) for t in content_terms(name))
               for name in names)


_NOT_NAMES = {"what", "which", "who", "when", "why", "how", "the", "and", "did", "does"}


def _missing_question_numbers(question: str, passages: list[Passage]) -> bool:
    """A question about 2022 is not answered by articles that never mention 2022."""
    wanted = {n for n in numbers(question) if len(n) >= 3}
    if not wanted:
        return False
    found = set().union(*(numbers(p.text) for p in passages))
    return not wanted <= found


def _holds_answer(kind: str, text: str, question: str) -> bool:
    """Does the sentence hold the kind of thing asked for, beyond what the question
    already says: a name it doesn't use (which/who), a figure or date it doesn't
    give (how many, when), a cause (why), a manner (how)?"""
    if kind in ("who", "which") or (kind == "numeric" and _MONEY_QUESTION.search(question)):
        return _has_type(kind, text, question)  # a new name; a sum (given sums aside)
    if kind == "numeric":
        given = numbers(question)
        return bool(numbers(text) - given) or bool(
            {w.lower() for w in _NUMBER.findall(text)} - {w.lower() for w in
                                                         _NUMBER.findall(question)})
    if kind == "when":
        return bool({d.lower() for d in _DATE.findall(text)}
                    - {d.lower() for d in _DATE.findall(question)})
    if kind == "why":
        return bool(_CAUSE.search(text))
    if kind == "how":
        return bool(_MANNER.search(text))
    return False

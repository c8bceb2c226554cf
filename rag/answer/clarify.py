"""Which story a question is about: same-story tests between articles, and the
question back when a question names no subject and the passages tell several stories.

No library groups news passages into stories on the fly, so this is ours; it leans on
named entities (capitalised words past a sentence's start), which is what tells two
news stories apart far more reliably than topic words do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rag.store.expansion import related_stems
from rag.text import STOPWORDS, content_terms
from rag.types import Choice, Passage

# A capitalised word that is not a sentence's first word; months, days and titles
# carry no story.
_NAME = re.compile(r"(?<![.!?\"“]\s)(?<!^)(?<!\n)\b[A-Z][A-Za-z'’-]+")
_NOT_STORY = {
    "mr", "mrs", "ms", "dr", "sir", "the", "monday", "tuesday", "wednesday", "thursday",
    "friday", "saturday", "sunday", "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december", "bbc", "news", "uk",
    "us", "i", "he", "she", "it", "they", "we", "but", "and", "in", "on", "at", "a", "an",
}
# Words of a question that ask rather than say what about.
_ASKING = {
    "what", "why", "how", "who", "whom", "whose", "when", "where", "which", "did", "does",
    "do", "is", "are", "was", "were", "can", "could", "will", "would", "should", "has",
    "have", "had", "tell", "me", "about", "explain", "happen", "happened", "much", "many",
    "long", "get", "got", "go", "went", "make", "made", "say", "said", "it", "they", "he",
    "she", "this", "that", "them", "their", "his", "her", "its",
    # negated, they still only ask ("why won't he apologise?")
    *(f"{w}{a}t" for w in ("won", "don", "doesn", "didn", "can", "isn", "aren", "wasn",
                            "weren", "wouldn", "couldn", "shouldn", "hasn", "haven", "hadn")
      for a in ("'", "’")),
}
_ASKING_STEMS = set(content_terms(" ".join(_ASKING)))
_OVERVIEW = re.compile(r"\b(compare|comparison|differ\w*|versus|vs\.?|both|all the|overview|"
                       r"summar\w*|each|various|list|which (articles|stories)|what (stories|"
                       r"news))\b", re.I)


_STORY = re.compile(r"^(?P<question>.*?)\s*\(story: (?P<title>.+)\)$", re.S)


def _headline(title: str) -> str:
    """A title on one line: how a story is named in a question and matched back."""
    return " ".join(title.split())


def about_story(question: str, title: str) -> str:
    """The question asked about one story: what a choice offered back asks."""
    return f"{question.rstrip(' ?')}? (story: {_headline(title)})"


def named_story(question: str) -> tuple[str, str | None]:
    """(the question, the story title it names with `about_story`, or None)."""
    match = _STORY.match(question.strip())
    if not match:
        return question, None
    return match["question"], match["title"]


def of_story(passages: list[Passage], title: str) -> list[Passage]:
    """The passages of the story `about_story` named (all of them if none match: the
    story may have been removed since it was offered)."""
    return [p for p in passages if _headline(p.title) == title] or passages


def names(text: str) -> set[str]:
    """The story-bearing names of a text, lower-cased."""
    return {re.sub(r"['’]s$", "", n.lower()).strip("'’-") for n in _NAME.findall(text)
            } - _NOT_STORY


def wants_several(question: str) -> bool:
    """A question that asks for a comparison or an overview may span stories."""
    return bool(_OVERVIEW.search(question))


def names_no_subject(question: str) -> bool:
    """A question with no name, number or specific topic: "why did relations sour?",
    "who won best actress?", "why does the company have to restate its earnings?".
    Three topic words may still fit several stories; a question that fits one is
    answered anyway, as only stories whose passages could answer are offered back
    (`decide`)."""
    words = re.findall(r"[A-Za-z][\w'’-]*|\d+", question)
    if any(w[:1].isupper() for w in words[1:]) or any(w.isdigit() for w in words):
        return False
    subject = [w for w in words if w.lower() not in STOPWORDS and w.lower() not in _ASKING]
    return len(subject) <= 3


class Stories:
    """The articles among some passages, with the names each one's passages hold."""

    def __init__(self, passages: Iterable[Passage]) -> None:
        self.names: dict[str, set[str]] = {}
        self.best: dict[str, Passage] = {}
        for p in passages:
            self.names.setdefault(p.article_id, set()).update(names(p.title + ". " + p.text))
            if p.article_id not in self.best or p.score > self.best[p.article_id].score:
                self.best[p.article_id] = p

    def same(self, a: str, b: str) -> bool:
        """Two articles tell one story when they share three names or more, and half of
        the smaller one's (two oil-price reports share "Opec" and "New York", not
        their story)."""
        if a == b:
            return True
        x, y = self.names.get(a, set()), self.names.get(b, set())
        shared = len(x & y)
        return shared >= 3 and shared >= 0.5 * min(len(x), len(y))

    def distinct(self) -> list[Passage]:
        """One passage per story, best first: articles of a story already listed are
        left out."""
        out: list[Passage] = []
        for p in sorted(self.best.values(), key=lambda p: -p.score):
            if not any(self.same(p.article_id, q.article_id) for q in out):
                out.append(p)
        return out


@dataclass(frozen=True)
class Decision:
    """What a question gets over its passages: a question back (`choices`), an answer
    from `passages` (all of them, or the one story that could answer), or, with
    neither, a refusal: no story's passages could answer."""

    choices: list[Choice] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return not self.choices and not self.passages


def decide(question: str, passages: list[Passage],
           could_answer: Callable[[list[Passage]], bool] | None = None, most: int = 5,
           close: float = 0.6) -> Decision:
    """Answer, refuse, or ask back. Only a question that names no subject, over passages
    of more than one story, is asked back; and only about the stories whose own
    passages `could_answer` (the reader's gates, asked of that story alone): a story
    retrieved for the question's meaning alone (a pub-closure row, an awards profile
    that says "turning sour", for "why did relations sour?") is no story a person
    would offer. One such story is answered from; none, refused. Asked back only when
    the runner-up story scores within `close` of the best; else the best answers."""
    everything = Decision(passages=passages)
    if not passages or not names_no_subject(question) or wants_several(question):
        return everything
    grouped = Stories(passages)
    stories = grouped.distinct()
    if len(stories) < 2:
        return everything
    # A word of the question that only the leading story uses points at it ("how much
    # will the breakwater cost?" over one harbour story among others): answer that.
    # News verbs and nouns with everyday synonyms ("sour": tension, rift...) name no
    # story, however few stories use them.
    asked = {t for t in content_terms(question) if not related_stems(t)} - _ASKING_STEMS
    words = {s.article_id: set() for s in stories}
    for p in passages:
        lead = next(s.article_id for s in stories if grouped.same(s.article_id, p.article_id))
        words[lead] |= set(content_terms(p.title + " " + p.text))
    others = set().union(*(words[s.article_id] for s in stories[1:]))
    if asked & words[stories[0].article_id] - others:
        return everything
    if could_answer is None:
        offered = stories
    else:  # best first, until the list is full
        offered = []
        for story in stories:
            if len(offered) == 1 and story.score < close * offered[0].score:
                break  # no runner-up close enough is left: the one found answers
            if could_answer(of_story(passages, _headline(story.title))):
                offered.append(story)
                if len(offered) == most:
                    break
        if not offered:
            return Decision()
    if len(offered) < 2 or offered[1].score < close * offered[0].score:
        if could_answer is None:
            return everything
        return Decision(passages=of_story(passages, _headline(offered[0].title)))
    return Decision(choices=[Choice(article_id=p.article_id, title=_headline(p.title),
                                    published=p.published,
                                    question=about_story(question, p.title))
                             for p in offered[:most]])


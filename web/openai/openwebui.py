"""Open WebUI's background tasks, recognised and answered without the engine.

Open WebUI asks the chat's own model for a chat's title, its tags and suggested
follow-ups (and, where turned on, search queries, autocompletion and a voice call's
emoji), each as one user message: a prompt of its own that starts `### Task:`, holds
the conversation as `USER: …`/`ASSISTANT: …` lines between `<chat_history>` tags
and asks for one JSON object (`{"title": …}`, `{"tags": […]}`, `{"follow_ups": […]}`,
`{"queries": […]}`, `{"text": …}`). Such a prompt is no question for the library (and
is longer than the question limit), so `task_of` recognises it by that shape and the
JSON key it asks for, and answers it from the conversation itself: the first question
for the title, the names in the questions and the cited stories' titles for tags, the
stories offered back and the cited stories for follow-ups. The answers are the same
every time and cost no model call. A text that only looks like a task prompt gets a
task's JSON, never an answer past the question limit; one over `MAX_TASK_CHARS` is
not taken as a task at all.

The prompts are Open WebUI's defaults (backend/open_webui/config.py, 0.12.4: the
DEFAULT_*_GENERATION_PROMPT_TEMPLATE values; tests/fixtures/openwebui/ holds them);
an admin's own templates are recognised as long as they keep that shape.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from rag.answer.clarify import named_story, names

logger = logging.getLogger(__name__)

MAX_TASK_CHARS = 200_000  # Open WebUI sends at most 6 turns; our answers are a few KB each
KEYS = {"title": "title", "tags": "tags", "follow_ups": "follow_ups", "queries": "queries",
        "text": "autocomplete"}  # the JSON key a prompt asks for -> the task
_HISTORY = re.compile(r"<chat_history>\n?(?P<history>.*?)\n?</chat_history>", re.S)
_ASKS = re.compile(r'\{\s*"(?P<key>' + "|".join(KEYS) + r')"\s*:')
_TURN = re.compile(r"^(USER|ASSISTANT|SYSTEM|DEVELOPER|TOOL|FUNCTION): ", re.M)
_EMOJI_TASK = "Your task is to reflect the speaker's likely facial expression"
_TRAILER = "\n\n---\n"  # web.openai.params.TRAILER: where our notes and sources begin
_SOURCE = re.compile(r"^\[\d+\] (?P<title>[^\n]+?)(?: · |: “)", re.M)
_OFFERED = "Ask again about one of them, for example:"
_ASKING = re.compile(
    r"^(?:(?:what|why|how|who|whom|whose|when|where|which|did|does|do|is|are|was|were|can|"
    r"could|will|would|should|has|have|had|tell me about|tell me|explain|please|and|so|but|"
    r"the|a|an)\b[\s,]*)+", re.I)
_NAME = re.compile(r"\b[A-Z][A-Za-z'’-]+")
TITLE_WORDS = 6
MAX_TAGS = 5
MAX_FOLLOW_UPS = 5


@dataclass(frozen=True)
class Task:
    kind: str  # title, tags, follow_ups, queries, autocomplete, emoji
    reply: str  # what is sent as the assistant's content


@dataclass
class Turn:
    role: str  # "user", "assistant", ...
    text: str  # an answer without our notes and sources
    titles: list[str]  # the stories an answer cited, in order
    offered: list[str]  # the questions an answer offered back


def task_of(prompt: str) -> Task | None:
    """The Open WebUI task this user message is, answered; None for a question."""
    if len(prompt) > MAX_TASK_CHARS:
        return None
    text = prompt.lstrip()
    if text.startswith(_EMOJI_TASK):
        return Task("emoji", "🙂")
    history = _HISTORY.search(text)
    if not text.startswith("### Task:") or history is None:
        return None
    asks = _ASKS.search(text[:history.start()] + text[history.end():])
    if asks is None:
        return None
    kind = KEYS[asks["key"]]
    turns = read_history(history["history"])
    value = ANSWERS[kind](turns)
    logger.info("Open WebUI's %s task answered from %d turns", kind, len(turns))
    return Task(kind, json.dumps({asks["key"]: value}, ensure_ascii=False))


def read_history(history: str) -> list[Turn]:
    """The turns of Open WebUI's `ROLE: content` lines (a content may span lines)."""
    starts = list(_TURN.finditer(history))
    turns = []
    for here, after in zip(starts, [*starts[1:], None], strict=True):
        body = history[here.end():after.start() if after else len(history)].strip()
        answer = body.partition(_TRAILER)[0]
        # the sources and offered questions are read from the whole turn: Open WebUI
        # cuts a long one in the middle for the follow-up task, the trailer's start too
        turns.append(Turn(
            role=here[1].lower(), text=answer.strip(),
            titles=list(dict.fromkeys(m["title"].strip() for m in _SOURCE.finditer(body)
                                      if "..." not in m["title"])),  # not one cut through
            offered=_offered(body)))
    return turns


def _offered(trailer: str) -> list[str]:
    """The questions a question back listed (`- …` lines after its heading)."""
    _, found, rest = trailer.partition(_OFFERED)
    offered = []
    for line in rest.splitlines() if found else []:
        if line.startswith("- "):
            offered.append(line[2:].strip())
        elif line.strip():
            break
    return offered


def _questions(turns: list[Turn]) -> list[str]:
    """The user's questions, without the story a chosen question names."""
    return [named_story(t.text)[0].strip() for t in turns if t.role == "user" and t.text.strip()]


def _title(turns: list[Turn]) -> str:
    """The first question's subject, in at most TITLE_WORDS words; else the first
    cited story's title; else "News question"."""
    for question in _questions(turns)[:1]:
        words = _ASKING.sub("", question.strip()).rstrip(" ?!.").split()
        if words:
            words = words[:TITLE_WORDS]
            return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])
    titles = [t for turn in turns for t in turn.titles]
    if titles:
        return " ".join(titles[0].split()[:TITLE_WORDS])
    return "News question"


def _names(texts: list[str]) -> list[str]:
    """The names in the texts as first written, in order (`rag.answer.clarify.names`' choice
    of what is a name: a capitalised word past a sentence's start)."""
    found: dict[str, str] = {}
    for text in texts:
        named = names(text)
        for match in _NAME.finditer(text):
            key = re.sub(r"['’]s$", "", match[0].lower()).strip("'’-")
            if key in named and key not in found:
                found[key] = re.sub(r"['’]s$", "", match[0])
    return list(found.values())


def _tags(turns: list[Turn]) -> list[str]:
    """"News" and the names in the questions and the cited stories' titles."""
    titles = [t for turn in turns for t in turn.titles]
    found = _names(_questions(turns) + titles)
    return ["News", *found[:MAX_TAGS - 1]] if found else ["News", "General"]


def _follow_ups(turns: list[Turn]) -> list[str]:
    """The stories the last answer offered back, then the stories it cited, then the
    names asked about; none the user has asked already."""
    last = next((t for t in reversed(turns) if t.role == "assistant"), None)
    asked = {q.casefold() for q in _questions(turns)}
    ideas = list(last.offered) if last else []
    ideas += [f"What else is reported in “{title}”?" for title in (last.titles if last else [])]
    ideas += [f"What is the latest news about {name}?"
              for name in _names(_questions(turns)[-1:] + (last.titles if last else []))]
    seen: list[str] = []
    for idea in ideas:
        idea = " ".join(idea.split())[:400]
        if idea and idea.casefold() not in asked and idea not in seen:
            seen.append(idea)
    return seen[:MAX_FOLLOW_UPS]


def _queries(turns: list[Turn]) -> list[str]:
    """The last question, as it was asked: the library's own search does the rest."""
    return _questions(turns)[-1:]


ANSWERS = {
    "title": _title, "tags": _tags, "follow_ups": _follow_ups, "queries": _queries,
    "autocomplete": lambda turns: "",  # its prompt's own answer when unsure
}

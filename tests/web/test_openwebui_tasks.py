"""Open WebUI's task prompts (its real templates, filled as it fills them) are
recognised and answered in the JSON each asks for; ordinary questions, however long
or however they begin, are not taken for tasks; the API's content cut (`stop`,
`max_tokens`) and its nesting check. No server: the live API's tests are
test_openai_api.py's."""

from __future__ import annotations

import json

import pytest
from support.openwebui_prompts import fill

from rag.settings import Settings
from web.limits import Limits
from web.openai import openwebui, params
from web.openai.api import nesting
from web.openai.cut import Cut, count_tokens, first_tokens
from web.openai.params import ApiError

WHY = "Why did relations between Iran and Azerbaijan sour?"
ANSWER = (
    "Relations soured after Azerbaijan moved closer to Israel [1]. The two presidents met "
    "in Baku on Monday [2].\n\n---\nSources:\n\n"
    "[1] Iran's president visits Baku as ties thaw · Seed Times · 2025-04-28: “Relations "
    "soured over Azerbaijan's ties with Israel.”\n\n"
    "[2] Iran's president visits Baku as ties thaw · Seed Times · 2025-04-28, about 28 Apr "
    "2025: “Pezeshkian met Aliyev in Baku on Monday.”")
ASKED_BACK = (
    "Which story do you mean?\n\n---\nAsk again about one of them, for example:\n\n"
    "- why did relations sour? (story: Iran's president visits Baku as ties thaw)\n\n"
    "- why did relations sour? (story: Club and supporters fall out over ticket prices)")
CHAT = [{"role": "user", "content": WHY}, {"role": "assistant", "content": ANSWER}]


def answered(name: str, messages: list[dict[str, str]], prompt: str = "") -> object:
    task = openwebui.task_of(fill(name, messages, prompt))
    assert task is not None, name
    return json.loads(task.reply)


def test_the_title_tags_and_follow_up_prompts_are_over_the_question_limit() -> None:
    """What the probe found: each of them was a 400 (RAG_MAX_QUESTION_CHARS)."""
    limits = Limits(Settings())
    for name in ("title", "tags", "follow_up"):
        prompt = fill(name, CHAT)
        assert prompt.startswith("### Task:") and len(prompt) > 1000
        with pytest.raises(ValueError, match="RAG_MAX_QUESTION_CHARS"):
            limits.question(prompt)
        asked = params.parse({"model": "news-rag", "messages": [
            {"role": "user", "content": prompt}]}, limits)
        assert asked.task is not None and asked.question.startswith("(Open WebUI")


def test_a_title_is_the_first_questions_subject() -> None:
    assert answered("title", CHAT) == {"title": "Relations between Iran and Azerbaijan sour"}
    follow = [*CHAT, {"role": "user", "content": "and when did they meet?"},
              {"role": "assistant", "content": "On Monday [1]."}]
    assert answered("title", follow)["title"] == "They meet"  # END:2: the last exchange
    assert answered("title", [{"role": "user", "content": "why?"}]) == {
        "title": "News question"}


def test_tags_are_news_and_the_names_asked_about_and_cited() -> None:
    tags = answered("tags", CHAT)["tags"]
    assert tags[0] == "News" and {"Iran", "Azerbaijan", "Baku"} <= set(tags)
    assert len(tags) <= openwebui.MAX_TAGS
    assert answered("tags", [{"role": "user", "content": "why did it sour?"}]) == {
        "tags": ["News", "General"]}


def test_follow_ups_are_the_stories_offered_back_then_the_cited_ones() -> None:
    ups = answered("follow_up", CHAT)["follow_ups"]
    assert ups[0] == "What else is reported in “Iran's president visits Baku as ties thaw”?"
    assert "What is the latest news about Iran?" in ups and 1 <= len(ups) <= 5
    assert all(isinstance(u, str) and len(u) <= 400 for u in ups)
    back = [{"role": "user", "content": "why did relations sour?"},
            {"role": "assistant", "content": ASKED_BACK}]
    assert answered("follow_up", back)["follow_ups"][:2] == [
        "why did relations sour? (story: Iran's president visits Baku as ties thaw)",
        "why did relations sour? (story: Club and supporters fall out over ticket prices)"]


def test_a_long_conversation_is_cut_as_open_webui_cuts_it_and_still_answered() -> None:
    long_answer = ANSWER.replace("[1]. ", "[1]. " + "More was said. " * 200, 1)
    chat = [*CHAT, {"role": "user", "content": "and what did Israel say?"},
            {"role": "assistant", "content": long_answer},
            {"role": "user", "content": "and Russia?"}, {"role": "assistant", "content": ANSWER}]
    prompt = fill("follow_up", chat)
    assert "More was said." in prompt and len(prompt) < len(long_answer)  # cut in the middle
    assert answered("follow_up", chat)["follow_ups"]
    assert answered("tags", chat)["tags"][:3] == ["News", "Iran", "Azerbaijan"]


def test_queries_autocomplete_and_emoji_get_their_shapes() -> None:
    assert answered("query", CHAT) == {"queries": [WHY]}
    assert answered("autocomplete", CHAT, prompt="Why did Iran") == {"text": ""}
    task = openwebui.task_of(fill("emoji", CHAT, prompt=ANSWER))
    assert task is not None and task.kind == "emoji" and task.reply == "🙂"


def test_only_a_task_prompts_shape_is_taken_for_one() -> None:
    """A question that starts like a task, or holds a chat history, or asks for JSON, is
    a question (and the question limit holds for it); a text over MAX_TASK_CHARS is never
    a task."""
    limits = Limits(Settings())
    for text in ["### Task: summarise the Baku meeting " + "in detail " * 150,
                 "Please explain <chat_history>USER: hi</chat_history> " + "why " * 300,
                 'Answer as { "title": "x" } ' + "why " * 300]:
        assert openwebui.task_of(text) is None
        with pytest.raises(ApiError, match="RAG_MAX_QUESTION_CHARS"):
            params.parse({"model": "news-rag", "messages": [
                {"role": "user", "content": text}]}, limits)
    huge = fill("title", [{"role": "user", "content": "why " * openwebui.MAX_TASK_CHARS}])
    assert openwebui.task_of(huge) is None
    assert openwebui.task_of(WHY) is None


# -- the content cut -------------------------------------------------------------------


def test_a_stop_sequence_split_across_pieces_is_found_and_not_sent() -> None:
    text = "Relations soured [1]. They met in Baku [2].\n\n---\nSources: ..."
    whole = Cut(["[2]", "Sources:"], None)
    assert whole.feed(text) + whole.end() == "Relations soured [1]. They met in Baku "
    assert whole.finish == "stop"
    streamed = Cut(["[2]", "Sources:"], None)
    pieces = [streamed.feed(text[i:i + 3]) for i in range(0, len(text), 3)]
    assert "".join(pieces) + streamed.end() == whole.sent and streamed.finish == "stop"
    none = Cut([], None)
    assert none.feed(text) == text and none.end() == "" and none.finish is None


def test_max_tokens_cuts_at_that_many_tokens_and_says_length() -> None:
    text = "Relations between Iran and Azerbaijan soured over Israel [1]. " * 5
    cut = Cut([], 5)
    sent = "".join(cut.feed(text[i:i + 7]) for i in range(0, len(text), 7)) + cut.end()
    assert cut.finish == "length" and count_tokens(sent) == 5
    assert text.startswith(sent) and sent == first_tokens(text, 5)
    assert first_tokens("née " * 3, 2) in ("n", "né", "née")  # no half character
    roomy = Cut([], 10_000)
    assert roomy.feed(text) + roomy.end() == text and roomy.finish is None


def test_nesting_is_measured_without_recursion() -> None:
    assert nesting(b'{"a": [1, {"b": "[[[[{{"}]}') == 3
    assert nesting(b'{"a": "\\"[[["}') == 1
    assert nesting(b"[" * 100_000) == 100_000
    assert nesting(b"") == 0

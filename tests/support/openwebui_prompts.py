"""Open WebUI's task prompts, filled as Open WebUI fills them (open_webui/utils/task.py,
0.12.4): the templates are tests/fixtures/openwebui/, taken from its config.py."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openwebui"


def template(name: str) -> str:
    return (FIXTURES / f"{name}.txt").read_text(encoding="utf-8")


def _lines(messages: list[dict[str, str]]) -> str:
    return "\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages)


def _middle(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}...{text[-(limit - half):]}"


def fill(name: str, messages: list[dict[str, str]], prompt: str = "") -> str:
    """The template `name` filled with the conversation (and, for autocomplete and
    emoji, the text being typed or spoken)."""
    text = template(name)
    if name == "follow_up":  # its default template's trimming (use_default=True)
        start = max(0, len(messages) - 4)
        first = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
        messages = ([messages[first]] if first is not None and first < start else []) \
            + messages[start:]
        messages = [{**m, "content": _middle(m["content"], 997)
                     if len(m["content"]) > 1000 else m["content"]} for m in messages]
    text = text.replace("{{TYPE}}", "General").replace("{{PROMPT}}", prompt)
    text = re.sub(r"(?i){{prompt}}", lambda _: prompt, text)
    text = re.sub(r"\{\{MESSAGES:END:(\d+)\}\}",
                  lambda m: _lines(messages[-int(m[1]):]), text)
    return text.replace("{{CURRENT_DATE}}", date.today().isoformat())


def task_body(name: str, messages: list[dict[str, str]], model: str = "news-rag",
              **extra: Any) -> dict[str, Any]:  # noqa: ANN401
    """The chat completion Open WebUI sends for a task (its routers/tasks.py payload,
    `metadata` popped by its OpenAI router; `max_tokens` its default of 1000)."""
    return {"model": model, "messages": [{"role": "user", "content": fill(name, messages)}],
            "stream": False, "max_tokens": 1000, **extra}

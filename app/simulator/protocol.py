"""The judge's prompt and reply format as the LM simulator reads and writes it.

DSPy's ChatAdapter renders ``JudgeTables`` (see ``app.routing.judging.signature``) into a last
user message with ``[[ ## question ## ]]`` and ``[[ ## tables ## ]]`` sections; the tables
section holds the cards of ``app.routing.preparation.cards``. The reply carries ``[[ ## verdicts ## ]]``
with a JSON list and ends with ``[[ ## completed ## ]]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = [
    "JudgePrompt",
    "TableText",
    "Verdict",
    "format_reply",
    "message_text",
    "parse_prompt",
]

QUESTION_MARKER = "[[ ## question ## ]]"
TABLES_MARKER = "[[ ## tables ## ]]"
HEADER = "### "
# Any ChatAdapter field marker; the tables section ends at the next one or at the instructions.
_FIELD_MARKER = re.compile(r"^\[\[ ## \w+ ## \]\]\s*$", re.MULTILINE)
_INSTRUCTIONS = "\nRespond with the corresponding output fields"
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class TableText:
    """One card as parsed from the prompt: its name and the words describing it."""

    name: str
    comment: str = ""
    column_names: tuple[str, ...] = ()
    column_comments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class JudgePrompt:
    """The question and the chunk's cards of one judge prompt."""

    question: str
    tables: tuple[TableText, ...]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The simulated LM's verdict on one table."""

    table: str
    relevant: bool
    confidence: float
    reason: str


def message_text(message: Any) -> str:
    """The text of one chat message, whether its content is a string or a list of parts."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def _last_user_text(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""


def _quoted(text: str) -> str:
    """The JSON string starting at the first quote of ``text``, or nothing."""
    start = text.find('"')
    if start < 0:
        return ""
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except ValueError:
        return text[start + 1 :]
    return value if isinstance(value, str) else ""


def _leading_name(text: str) -> tuple[str, str]:
    """The name at the start of ``text`` (plain, or a JSON string when it is not plain) and the rest."""
    if text.startswith('"'):
        try:
            value, end = _DECODER.raw_decode(text)
        except ValueError:
            pass
        else:
            if isinstance(value, str):
                return value, text[end:]
    name, _, rest = text.partition(" ")
    return name, rest


def _card(header: str, lines: Sequence[str]) -> TableText:
    names: list[str] = []
    comments: list[str] = []
    for line in lines:
        if not line.startswith("- "):
            continue
        column, rest = _leading_name(line[2:])
        names.append(column)
        comment = _quoted(rest)
        if comment:
            comments.append(comment)
    name, rest = _leading_name(header[len(HEADER) :].strip())
    return TableText(name, _quoted(rest), tuple(names), tuple(comments))


# The same chunks come back for every question of a route, so parsing them once per distinct
# tables section keeps the simulator's CPU per call low (it shares the machine with the router).
@lru_cache(maxsize=4096)
def _parse_tables(section: str) -> tuple[TableText, ...]:
    cards: list[tuple[str, list[str]]] = []
    for line in section.splitlines():
        if line.startswith(HEADER) and line[len(HEADER) :].strip():
            cards.append((line, []))
        elif cards:
            cards[-1][1].append(line)
    return tuple(_card(header, lines) for header, lines in cards)


def parse_prompt(messages: Sequence[Any]) -> JudgePrompt | None:
    """The judge prompt in the last user message, or None when it carries no judge markers."""
    text = _last_user_text(messages)
    q_at = text.find(QUESTION_MARKER)
    t_at = text.find(TABLES_MARKER, q_at + 1) if q_at >= 0 else -1
    if q_at < 0 or t_at < 0:
        return None
    question = text[q_at + len(QUESTION_MARKER) : t_at].strip()
    rest = text[t_at + len(TABLES_MARKER) :]
    end = len(rest)
    instructions = rest.find(_INSTRUCTIONS)
    if instructions >= 0:
        end = instructions
    marker = _FIELD_MARKER.search(rest)
    if marker is not None:
        end = min(end, marker.start())
    return JudgePrompt(question, _parse_tables(rest[:end]))


def format_reply(verdicts: Sequence[Verdict]) -> str:
    """The reply content in the ChatAdapter's output format."""
    items = [
        {"table": v.table, "relevant": v.relevant, "confidence": round(v.confidence, 2), "reason": v.reason}
        for v in verdicts
    ]
    return f"[[ ## verdicts ## ]]\n{json.dumps(items, ensure_ascii=False)}\n\n[[ ## completed ## ]]"

"""The judge's prompt and reply format as the LM simulator reads and writes it.

DSPy's ChatAdapter renders the judge's signature (``app.routing.judging.signature``) into a last
user message with ``[[ ## question ## ]]`` and ``[[ ## tables ## ]]`` sections; the tables
section holds the cards of ``app.routing.preparation.cards``. Two signatures are spoken:

- the old one: question first, then tables; the reply's ``[[ ## verdicts ## ]]`` holds one
  ``{"table", "relevant", "confidence", "reason"}`` per table;
- the short one: tables first (a prefix every question shares), question last; the reply's
  ``[[ ## relevant ## ]]`` lists only the relevant tables, one ``"name | confidence | reason"`` string each.

Which one a prompt is comes from the output field it asks for. Replies end with
``[[ ## completed ## ]]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

__all__ = [
    "JudgePrompt",
    "ReplyField",
    "TableText",
    "Verdict",
    "format_reply",
    "message_text",
    "parse_prompt",
    "reply_field",
]

# The reply's output field: one verdict per table (the old signature) or the relevant ones only.
ReplyField = Literal["verdicts", "relevant"]

HEADER = "### "
# Any ChatAdapter field marker; the tables section ends at the next one or at the instructions.
_FIELD_MARKER = re.compile(r"^\[\[ ## (\w+) ## \]\]\s*$", re.MULTILINE)
_INSTRUCTIONS = "\nRespond with the corresponding output fields"
_STARTING_WITH = "starting with the field `"
_RELEVANT_MARKER = "[[ ## relevant ## ]]`"
_OUTPUT_FIELDS = "Your output fields are:"
# Words kept of a reason in the short format.
REASON_WORDS = 5
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


def _entries(line: str) -> list[str]:
    """The comma-separated column entries of a card's columns line (commas inside quotes kept)."""
    entries: list[str] = []
    start, quoted, escaped = 0, False, False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted and line.startswith(" ", i + 1):
            entries.append(line[start:i])
            start = i + 2
    entries.append(line[start:])
    return [e for e in entries if e.strip()]


def _columns(lines: Sequence[str]) -> list[str]:
    """A card's column entries: one line of them (today's cards), or a ``- `` line each (earlier)."""
    found: list[str] = []
    for line in lines:
        if line.startswith("- "):
            found.append(line[2:])
        elif line.strip():
            found.extend(_entries(line))
    return found


def _card(header: str, lines: Sequence[str]) -> TableText:
    names: list[str] = []
    comments: list[str] = []
    for entry in _columns(lines):
        column, rest = _leading_name(entry)
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


def _sections(text: str) -> dict[str, str]:
    """Each field's section of a rendered user message (the first of a name), in either order.

    A section runs from its marker to the next marker or to the output instructions.
    """
    marks = list(_FIELD_MARKER.finditer(text))
    instructions = text.find(_INSTRUCTIONS)
    sections: dict[str, str] = {}
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        if mark.end() <= instructions < end:
            end = instructions
        sections.setdefault(mark.group(1), text[mark.end() : end])
    return sections


def parse_prompt(messages: Sequence[Any]) -> JudgePrompt | None:
    """The judge prompt in the last user message, or None when it carries no judge markers.

    The old signature puts the question first and the tables after it; the short one puts the
    tables (the part every question of a route shares, which a provider caches) first.
    """
    sections = _sections(_last_user_text(messages))
    question, tables = sections.get("question"), sections.get("tables")
    if question is None or tables is None:
        return None
    return JudgePrompt(question.strip(), _parse_tables(tables))


def reply_field(messages: Sequence[Any]) -> ReplyField:
    """The output field the prompt asks for: ``relevant`` (the short format) or ``verdicts``.

    Read from the user message's closing instruction ("starting with the field ..."), else from
    the system message's list of output fields; ``verdicts`` when neither names one.
    """
    text = _last_user_text(messages)
    at = text.rfind(_STARTING_WITH)
    if at >= 0:
        return "relevant" if text.startswith(_RELEVANT_MARKER, at + len(_STARTING_WITH)) else "verdicts"
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "system":
            return _system_reply_field(message_text(message))
    return "verdicts"


@lru_cache(maxsize=64)
def _system_reply_field(system: str) -> ReplyField:
    outputs = system.partition(_OUTPUT_FIELDS)[2]
    return "relevant" if outputs.lstrip().startswith("1. `relevant`") else "verdicts"


def _short_reason(reason: str) -> str:
    """A few words, as a model told to keep its reasons short writes them."""
    words = reason.split()
    return " ".join(words[:REASON_WORDS])


def format_reply(verdicts: Sequence[Verdict], field: ReplyField = "verdicts") -> str:
    """The reply content in the ChatAdapter's output format.

    ``verdicts``: one object per table with ``relevant`` true or false. ``relevant``: only the
    relevant tables, one string each, ``"name | confidence | short reason"`` (``[]`` when none is).
    """
    items: list[Any]
    if field == "relevant":
        items = [
            f"{v.table} | {round(v.confidence, 2)} | {_short_reason(v.reason)}"
            for v in verdicts
            if v.relevant
        ]
    else:
        items = [
            {
                "table": v.table,
                "relevant": v.relevant,
                "confidence": round(v.confidence, 2),
                "reason": v.reason,
            }
            for v in verdicts
        ]
    return f"[[ ## {field} ## ]]\n{json.dumps(items, ensure_ascii=False)}\n\n[[ ## completed ## ]]"

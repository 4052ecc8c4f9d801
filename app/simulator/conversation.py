"""How the simulator reads a follow-up: the earlier questions the service puts before it.

The service writes a follow-up for the judge as a header, the earlier questions numbered one a
line, then the follow-up after its label (``app/routing/conversation.py``; a test holds the two
layouts equal). Reading it, the lexical policy matches every question's words, and the oracle
looks the conversation up by its earlier questions and the follow-up together: an oracle entry
with a ``history`` is known only with that history, as a real LM needs the context to know what
"and by region?" is about.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["EARLIER_HEADER", "FOLLOW_UP_LABEL", "AskedConversation", "conversation_key", "read_conversation"]

EARLIER_HEADER = "Earlier questions in this conversation, oldest first:"
FOLLOW_UP_LABEL = "Follow-up question, to read with the earlier ones:"
_NUMBERED = re.compile(r"^\d+\. ")


@dataclass(frozen=True, slots=True)
class AskedConversation:
    """A judge prompt's question part: the earlier questions (none for a question alone) and the asked one."""

    earlier: tuple[str, ...]
    question: str

    def words(self) -> str:
        """Every question's text, without the layout's labels (they would match tables)."""
        return " ".join([*self.earlier, self.question])


def read_conversation(text: str) -> AskedConversation:
    """The earlier questions and the follow-up of a judge prompt's question part."""
    if not text.startswith(EARLIER_HEADER):
        return AskedConversation((), text)
    head, label, question = text.rpartition("\n" + FOLLOW_UP_LABEL)
    if not label:
        return AskedConversation((), text)
    lines = head.removeprefix(EARLIER_HEADER).strip().splitlines()
    earlier = tuple(_NUMBERED.sub("", line).strip() for line in lines if line.strip())
    return AskedConversation(earlier, question.strip())


def conversation_key(earlier: Sequence[str], question: str) -> str:
    """The oracle's key of a follow-up: its earlier questions and it, normalised, in order."""
    return " || ".join(" ".join(q.split()).casefold() for q in [*earlier, question])

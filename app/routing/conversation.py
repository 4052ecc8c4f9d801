"""A follow-up question's conversation: the earlier questions the judge reads, the tables carried over.

A follow-up ("and by region?") names no table; read alone it is routed as if it were the whole
question. With its conversation the judge reads the earlier questions before it (in the
question part of the prompt, after the cards, so every call over a chunk keeps the prefix a
provider caches), the shortlist scores the earlier questions' words too, and the previous
route's tables get at least their score in that answer as their prior (the previous answer is
the best guess of what the conversation is about, in the order it ranked them), limited to the
tables the asking key sees now.

Bounded: at most ``max_turns`` earlier questions and ``max_chars`` characters of them, the
newest kept; older turns are dropped whole, and a single turn longer than the limit keeps its end.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["EARLIER_HEADER", "FOLLOW_UP_LABEL", "Conversation", "bounded_turns"]

# The judge's text of a follow-up; the LM simulator reads the same layout (app/simulator/conversation.py).
EARLIER_HEADER = "Earlier questions in this conversation, oldest first:"
FOLLOW_UP_LABEL = "Follow-up question, to read with the earlier ones:"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def bounded_turns(turns: Sequence[str], max_turns: int, max_chars: int) -> tuple[str, ...]:
    """The newest ``max_turns`` turns within ``max_chars`` characters, oldest first, one line each."""
    kept: list[str] = []
    left = max_chars
    newest_first = reversed([_one_line(t) for t in turns if t.strip()][-max_turns:] if max_turns else [])
    for turn in newest_first:
        if len(turn) > left:
            if not kept:  # the newest turn alone is too long: its end is what the follow-up continues
                kept.append(turn[-left:])
            break
        kept.append(turn)
        left -= len(turn)
    return tuple(reversed(kept))


@dataclass(frozen=True, slots=True)
class Conversation:
    """What a follow-up carries from earlier turns (already bounded and checked against the grant)."""

    earlier: tuple[str, ...]  # earlier questions, oldest first
    carried: tuple[tuple[str, float], ...] = ()  # the previous route's tables the key sees, with their score
    previous_route_id: str | None = None

    def judge_text(self, question: str) -> str:
        """The follow-up as the judge reads it: the earlier questions, then it."""
        if not self.earlier:
            return question
        numbered = "\n".join(f"{i}. {q}" for i, q in enumerate(self.earlier, start=1))
        return f"{EARLIER_HEADER}\n{numbered}\n{FOLLOW_UP_LABEL} {question}"

    def lexical_text(self, question: str) -> str:
        """What the shortlist scores: every question's words, no labels (they would match tables)."""
        return " ".join([*self.earlier, question])

    def fingerprint(self) -> str:
        """A digest of what changes the answer: the earlier questions and the carried tables."""
        encoded = json.dumps([self.earlier, self.carried], ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()[:32]

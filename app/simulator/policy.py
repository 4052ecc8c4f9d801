"""Relevance policies of the LM simulator: who decides which tables a question needs.

Both policies are pure functions of the seed, the question and the table, never of call
order, so a concurrent run replays exactly.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from app.simulator.conversation import conversation_key, read_conversation
from app.simulator.protocol import JudgePrompt, TableText, Verdict

__all__ = [
    "LexicalPolicy",
    "OraclePolicy",
    "Policy",
    "load_oracle",
    "normalize_question",
    "tokens",
    "unit_draw",
]

# Question words that name no table: function words and the verbs of asking.
_STOP_TEXT = """
a about all an and any are as at be by can count did do does each every for from get give had
has have how i id in into is it its list many me much my no not number of on or our per show
than that the their them there these they this those to total was we were what when where which
who whom whose why will with would you your
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_WORD = re.compile(r"[a-z]+|[0-9]+")


class Policy(Protocol):
    """Decides one verdict per table of a judge prompt."""

    def judge(self, prompt: JudgePrompt) -> list[Verdict]:
        """One verdict per table of ``prompt``, in card order."""
        ...


def stem(word: str) -> str:
    """A crude English stem: plurals and -ing/-ed endings off, so 'orders' meets 'order'."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    return word


def tokens(text: str) -> set[str]:
    """Lower-cased, stemmed content words of ``text``; identifiers split on '.', '_' and camelCase."""
    words = _WORD.findall(_CAMEL.sub(r"\1 \2", text).lower())
    return {stem(w) for w in words if len(w) > 1 and w not in STOP_WORDS}


def normalize_question(question: str) -> str:
    """The question with whitespace collapsed and case folded, as oracle keys compare."""
    return " ".join(question.split()).casefold()


def unit_draw(seed: int, *parts: str) -> float:
    """A uniform number in [0, 1) fixed by the seed and the parts, independent of call order."""
    digest = hashlib.blake2b("\x1f".join([str(seed), *parts]).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@lru_cache(maxsize=65536)
def _table_words(table: TableText) -> tuple[frozenset[str], frozenset[str]]:
    """The words of a table's name, and of its comment and columns (cached: cards repeat)."""
    name_words = frozenset(tokens(table.name.rsplit(".", 1)[-1]))
    column_words = frozenset(tokens(" ".join([table.comment, *table.column_names, *table.column_comments])))
    return name_words, column_words


@dataclass(frozen=True, slots=True)
class LexicalPolicy:
    """Relevant when the table's name shares a word with the question, or two column words do."""

    seed: int = 0

    def _verdict(self, question: str, asked: set[str], table: TableText) -> Verdict:
        name_words, column_words = _table_words(table)
        name_hits = asked & name_words
        column_hits = (asked & column_words) - name_hits
        relevant = bool(name_hits) or len(column_hits) >= 2
        jitter = 0.05 * unit_draw(self.seed, "lexical", question, table.name.casefold())
        if relevant:
            confidence = min(0.98, 0.6 + 0.15 * len(name_hits) + 0.05 * len(column_hits) + jitter)
            hits = sorted(name_hits | column_hits)
            reason = "mentions " + ", ".join(hits[:4])
        else:
            confidence = max(0.5, 0.9 - 0.15 * len(column_hits) - jitter)
            reason = "no overlap with the question" if not column_hits else "weak column overlap"
        return Verdict(table.name, relevant, confidence, reason)

    def judge(self, prompt: JudgePrompt) -> list[Verdict]:
        """One verdict per table by word overlap with the question (and a follow-up's earlier ones)."""
        asked = tokens(read_conversation(prompt.question).words())
        return [self._verdict(prompt.question, asked, table) for table in prompt.tables]


@dataclass(frozen=True, slots=True)
class OraclePolicy:
    """Gold tables from an oracle file, flipped at the false-negative and false-positive rates."""

    gold: Mapping[str, frozenset[str]]
    fnr: float = 0.0
    fpr: float = 0.0
    seed: int = 0

    def gold_tables(self, question: str) -> frozenset[str] | None:
        """The gold set of ``question``: exact match first, else the longest oracle question inside it.

        A follow-up is known by its conversation (an entry with that ``history``); one the oracle
        does not know as a conversation is looked up as if asked alone.
        """
        conversation = read_conversation(question)
        if conversation.earlier:
            known = self.gold.get(conversation_key(conversation.earlier, conversation.question))
            if known is not None:
                return known
            question = conversation.question
        asked = normalize_question(question)
        exact = self.gold.get(asked)
        if exact is not None:
            return exact
        inside = [known for known in self.gold if known and known in asked]
        return self.gold[max(inside, key=len)] if inside else None

    def judge(self, prompt: JudgePrompt) -> list[Verdict]:
        """One verdict per table: gold is relevant, unless the seeded draw flips it."""
        gold = self.gold_tables(prompt.question) or frozenset()
        key = normalize_question(prompt.question)
        # A judge's mistakes depend on what else it reads: the draw includes the chunk's tables,
        # so one table judged in two chunks errs independently in each (seeded, order-free).
        chunk = "|".join(sorted(t.name.casefold() for t in prompt.tables))
        verdicts = []
        for table in prompt.tables:
            name = table.name.casefold()
            is_gold = name in gold
            flipped = unit_draw(self.seed, "flip", key, name, chunk) < (self.fnr if is_gold else self.fpr)
            confidence = 0.7 + 0.25 * unit_draw(self.seed, "confidence", key, name, chunk)
            reason = ("gold table" if is_gold else "not in gold set") + (" (flipped)" if flipped else "")
            verdicts.append(Verdict(table.name, is_gold != flipped, confidence, reason))
        return verdicts


def _oracle_entries(lines: Iterable[str], source: str) -> dict[str, frozenset[str]]:
    gold: dict[str, frozenset[str]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            question, tables = entry["question"], entry["gold_tables"]
            history = entry.get("history", [])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{source}:{number}: not an oracle entry: {exc}") from exc
        if not isinstance(question, str) or not isinstance(tables, list) or not isinstance(history, list):
            raise ValueError(f"{source}:{number}: question must be a string, gold_tables and history lists")
        key = (
            conversation_key([str(h) for h in history], question) if history else normalize_question(question)
        )
        gold[key] = frozenset(str(t).casefold() for t in tables)
    return gold


def load_oracle(path: Path) -> dict[str, frozenset[str]]:
    """Question → gold tables from a JSON-lines file, keys normalised, table names case-folded."""
    with path.open(encoding="utf-8") as lines:
        return _oracle_entries(lines, str(path))

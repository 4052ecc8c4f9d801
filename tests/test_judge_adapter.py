"""The judge's adapter gives DSPy's ChatAdapter prompts and parses, only cheaper."""

from __future__ import annotations

import json

import dspy
import pytest
from dspy import AdapterParseError

from app.routing.judging.adapter import JudgeAdapter
from app.routing.judging.signature import JudgeTables, SelectTables, TableVerdict, as_verdicts

CARDS = '### s.orders "one row per order"\n- id integer PK\n\n### s.customers\n- id integer PK'


def test_prompt_is_chat_adapters_prompt() -> None:
    inputs = {"question": "Who ordered most?", "tables": CARDS}
    ours = JudgeAdapter().format(JudgeTables, [], inputs)
    again = JudgeAdapter().format(JudgeTables, [], inputs)
    theirs = dspy.ChatAdapter(use_json_adapter_fallback=False).format(JudgeTables, [], inputs)
    assert ours == theirs == again


def test_messages_are_chat_adapters_format_with_and_without_demos() -> None:
    inputs = {"question": "Who ordered most?", "tables": CARDS}
    verdict = TableVerdict(table="s.orders", relevant=True, confidence=0.9, reason="orders")
    demos = [
        dspy.Example(question="Orders per day", tables=CARDS, verdicts=[verdict]),
        dspy.Example(question="Only an input and an output", verdicts=[verdict]),
    ]
    chat = dspy.ChatAdapter(use_json_adapter_fallback=False)
    adapter = JudgeAdapter()
    for shown in ([], demos):
        assert adapter.messages(JudgeTables, shown, inputs) == chat.format(JudgeTables, shown, inputs)
    # The cached field lookups follow a changed signature (new instructions make a new class).
    changed = JudgeTables.with_instructions("Answer tersely.")
    assert adapter.messages(changed, [], inputs) == chat.format(changed, [], inputs)


def test_parse_matches_chat_adapter_on_json_and_lenient_replies() -> None:
    verdicts = [{"table": "s.orders", "relevant": True, "confidence": 0.9, "reason": "orders"}]
    strict = f"[[ ## verdicts ## ]]\n{json.dumps(verdicts)}\n\n[[ ## completed ## ]]"
    # A Python-literal list is not JSON; ChatAdapter's lenient parser still reads it.
    lenient = "[[ ## verdicts ## ]]\n" + repr(verdicts) + "\n\n[[ ## completed ## ]]"
    chat = dspy.ChatAdapter(use_json_adapter_fallback=False)
    for reply in (strict, lenient):
        ours = JudgeAdapter().parse(JudgeTables, reply)
        assert ours == chat.parse(JudgeTables, reply)
        assert ours["verdicts"] == [TableVerdict(**verdicts[0])]


@pytest.mark.parametrize(
    "reply",
    [
        "no markers at all",
        '[[ ## verdicts ## ]]\n[{"table": "s.orders", "relevant": tr',  # cut short
        '[[ ## verdicts ## ]]\n[{"table": "s.orders", "relevant": true, "confidence": 7}]',  # out of range
        # Cut short where a lenient parser would repair it into a shorter list: still a failure.
        '[[ ## verdicts ## ]]\n[{"table": "s.orders", "relevant": true, "confidence": 0.9, "reason": "x"}, ',
    ],
)
def test_unparseable_replies_raise_adapter_parse_error(reply: str) -> None:
    with pytest.raises(AdapterParseError):
        JudgeAdapter().parse(JudgeTables, reply)


def test_the_short_format_puts_only_the_question_after_the_shared_prefix() -> None:
    adapter = JudgeAdapter()
    cards = "### s.orders\nid integer PK\n\n### s.customers\nid integer PK"
    first = adapter.messages(SelectTables, [], {"tables": cards, "question": "How many orders?"})
    second = adapter.messages(SelectTables, [], {"tables": cards, "question": "Who bought most?"})
    assert first[0] == second[0]  # the system message
    head, _, question = first[-1]["content"].rpartition("[[ ## question ## ]]")
    assert question.strip() == "How many orders?"
    assert second[-1]["content"].startswith(head)
    assert "starting with the field `[[ ## relevant ## ]]`" in head
    # DSPy's own call path renders the same messages.
    assert adapter.format(SelectTables, [], {"tables": cards, "question": "How many orders?"}) == first


def test_short_entries_are_untrusted_text() -> None:
    reply = [
        "s.orders | 0.8 | counts orders",
        "s.customers",  # no confidence: named, so a clear yes
        "s.items | very | sure",  # unreadable confidence
        "s.refunds | nan | x",
        "s.returns | 7 | out of range",
        ' "s.quoted" | 0.3 ',
    ]
    verdicts = as_verdicts(reply)
    assert [(v.table, v.confidence, v.reason) for v in verdicts] == [
        ("s.orders", 0.8, "counts orders"),
        ("s.customers", 0.9, ""),
        ("s.items", 0.9, "sure"),
        ("s.refunds", 0.9, "x"),
        ("s.returns", 1.0, "out of range"),
        ('"s.quoted"', 0.3, ""),
    ]
    assert all(v.relevant for v in verdicts)

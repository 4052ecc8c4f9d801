"""The simulator speaks the short reply format: cards first, question last, only relevant tables listed."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import dspy
import httpx
import pytest
from pydantic import BaseModel

from app.simulator.faults import FaultRates
from app.simulator.service import SimulatorConfig, running_simulator

SHORT_REPLY = re.compile(r"\A\[\[ ## relevant ## \]\]\n(\[.*\])\n\n\[\[ ## completed ## \]\]\Z", re.DOTALL)
OLD_REPLY = re.compile(r"\A\[\[ ## verdicts ## \]\]\n(\[.*\])\n\n\[\[ ## completed ## \]\]\Z", re.DOTALL)

TABLES = """### sales.orders "One row per customer order"
- id integer PK
- customer_id integer FK sales.customers.id
- placed_at timestamp null "when the order was placed"

### sales.customers [view]
- id integer PK
- fullName text

### hr.employees
- id integer PK
- salary numeric null "yearly, in EUR"

### ops.shipment_facts
- ship_region text
- carrier_name text"""

SYSTEM_SHORT = (
    "Your input fields are:\n1. `tables` (str): table cards\n2. `question` (str): the user's question\n"
    "Your output fields are:\n1. `relevant` (list[RelevantTable]): only the relevant tables"
)
SYSTEM_OLD = (
    "Your input fields are:\n1. `question` (str)\n2. `tables` (str)\n"
    "Your output fields are:\n1. `verdicts` (list[TableVerdict])"
)


def short_prompt(question: str, tables: str = TABLES) -> list[dict[str, str]]:
    """The new signature as DSPy's ChatAdapter renders it: cards first, question last."""
    user = (
        f"[[ ## tables ## ]]\n{tables}\n\n[[ ## question ## ]]\n{question}\n\n"
        "Respond with the corresponding output fields, starting with the field `[[ ## relevant ## ]]` "
        "(must be formatted as a valid Python list[RelevantTable]), and then ending with the marker "
        "for `[[ ## completed ## ]]`."
    )
    return [{"role": "system", "content": SYSTEM_SHORT}, {"role": "user", "content": user}]


def old_prompt(question: str, tables: str = TABLES) -> list[dict[str, str]]:
    """The old signature: question first, one verdict per table asked for."""
    user = (
        f"[[ ## question ## ]]\n{question}\n\n[[ ## tables ## ]]\n{tables}\n\n"
        "Respond with the corresponding output fields, starting with the field `[[ ## verdicts ## ]]` "
        "(must be formatted as a valid Python list[TableVerdict]), and then ending with the marker "
        "for `[[ ## completed ## ]]`."
    )
    return [{"role": "system", "content": SYSTEM_OLD}, {"role": "user", "content": user}]


Start = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Starts simulators on free loopback ports; each yields a client bound to its base URL."""
    async with contextlib.AsyncExitStack() as stack:

        async def _start(**options: Any) -> httpx.AsyncClient:
            base_url = await stack.enter_async_context(running_simulator(SimulatorConfig(port=0, **options)))
            return await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=10))

        yield _start


async def complete(
    client: httpx.AsyncClient, messages: list[dict[str, str]], model: str = "m"
) -> httpx.Response:
    response = await client.post("/v1/chat/completions", json={"model": model, "messages": messages})
    assert response.status_code == 200
    return response


async def test_the_short_format_lists_only_the_relevant_tables(start: Start) -> None:
    client = await start()
    content = (await complete(client, short_prompt("How many orders did each customer place?"))).json()
    match = SHORT_REPLY.match(content["choices"][0]["message"]["content"])
    assert match is not None
    items = json.loads(match.group(1))
    assert [item["table"] for item in items] == ["sales.orders", "sales.customers"]
    assert all(set(item) == {"table", "confidence", "reason"} for item in items)
    assert all(0 < len(item["reason"].split()) <= 5 for item in items)
    none = (await complete(client, short_prompt("Something about weather?"))).json()
    assert none["choices"][0]["message"]["content"] == "[[ ## relevant ## ]]\n[]\n\n[[ ## completed ## ]]"


async def test_the_old_format_answers_as_before(start: Start) -> None:
    client = await start()
    content = (await complete(client, old_prompt("How many orders did each customer place?"))).json()
    match = OLD_REPLY.match(content["choices"][0]["message"]["content"])
    assert match is not None
    assert {v["table"]: v["relevant"] for v in json.loads(match.group(1))} == {
        "sales.orders": True,
        "sales.customers": True,
        "hr.employees": False,
        "ops.shipment_facts": False,
    }


@pytest.mark.parametrize(
    ("fault", "check"), [("truncated", "cut"), ("malformed", "prose"), ("invented", "ghost")]
)
async def test_faults_spoil_the_short_format_too(start: Start, fault: str, check: str) -> None:
    client = await start(faults=FaultRates.from_mapping({fault: 1.0}))
    body = (await complete(client, short_prompt("How many orders did each customer place?"))).json()
    content = body["choices"][0]["message"]["content"]
    assert content.startswith("[[ ## relevant ## ]]")
    if check == "cut":
        assert "[[ ## completed ## ]]" not in content
        assert body["choices"][0]["finish_reason"] == "length"
    elif check == "prose":
        section = content.split("\n")[1]
        with pytest.raises(json.JSONDecodeError):
            json.loads(section)
    else:
        match = SHORT_REPLY.match(content)
        assert match is not None
        names = [item["table"] for item in json.loads(match.group(1))]
        assert any("ghost_table" in name for name in names)
        assert {"sales.orders", "sales.customers"} <= set(names)


class RelevantTable(BaseModel):
    table: str
    confidence: float
    reason: str = ""


class JudgeShort(dspy.Signature):  # type: ignore[misc]  # DSPy ships no type information
    """Name the tables an SQL query answering the question must read."""

    tables: str = dspy.InputField(desc="table cards, one per table")
    question: str = dspy.InputField(desc="the user's question")
    relevant: list[RelevantTable] = dspy.OutputField(desc="only the relevant tables")


async def test_dspy_renders_and_parses_the_short_format(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    client = await start()
    base_url = str(client.base_url).rstrip("/")
    lm = dspy.LM("openai/sim", api_base=f"{base_url}/v1", api_key="sim", cache=False, num_retries=0)
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter(use_json_adapter_fallback=False)):
        result = await dspy.Predict(JudgeShort).acall(tables=TABLES, question="How many orders per customer?")
    assert {t.table for t in result.relevant} == {"sales.orders", "sales.customers"}

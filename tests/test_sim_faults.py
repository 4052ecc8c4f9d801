"""The simulator's fault knobs over real HTTP on loopback, and what DSPy makes of each fault."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import dspy
import httpx
import pytest
from dspy import AdapterParseError, LMRateLimitError, LMServerError, LMTransportError

from app.llm.backend import build_backend
from app.routing.judging.adapter import JudgeAdapter
from app.routing.judging.judge import TableJudge
from app.settings import Settings
from app.simulator.service import (
    FaultRates,
    SimulatorConfig,
    add_arguments,
    config_from_args,
    running_simulator,
)
from tests.fixtures.judge_prompts import TABLES, judge_prompt

Start = Callable[..., Awaitable[tuple[str, httpx.AsyncClient]]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Starts simulators with the given faults; each yields its base URL and a client."""
    async with contextlib.AsyncExitStack() as stack:

        async def _start(**faults: Any) -> tuple[str, httpx.AsyncClient]:
            config = SimulatorConfig(port=0, faults=FaultRates(**faults))
            url = await stack.enter_async_context(running_simulator(config))
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10))
            return url, client

        yield _start


async def _complete(client: httpx.AsyncClient, question: str = "How many orders?") -> httpx.Response:
    return await client.post("/v1/chat/completions", json={"messages": judge_prompt(question)})


async def test_rate_limit_is_429_with_retry_after(start: Start) -> None:
    _, client = await start(rate_limit=1.0, retry_after_s=0.25)
    response = await _complete(client)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "0.25"
    assert response.headers["retry-after-ms"] == "250"
    assert response.json()["error"]["type"] == "rate_limit_error"
    stats = (await client.get("/stats")).json()
    assert stats["faults"] == {"rate_limit": 1}


async def test_server_error_is_500(start: Start) -> None:
    _, client = await start(server_error=1.0)
    response = await _complete(client)
    assert response.status_code == 500
    assert response.json()["error"]["message"]


async def test_reset_drops_the_connection_without_a_response(start: Start) -> None:
    _, client = await start(reset=1.0)
    with pytest.raises(httpx.TransportError):
        await _complete(client)
    assert (await client.get("/stats")).json()["faults"] == {"reset": 1}


async def test_hang_holds_the_call_until_the_client_gives_up(start: Start) -> None:
    _, client = await start(hang=1.0)
    with pytest.raises(httpx.ReadTimeout):
        await client.post("/v1/chat/completions", json={"messages": judge_prompt("orders")}, timeout=0.3)
    for _ in range(100):  # the server notices the disconnect on its own schedule
        if (await client.get("/stats")).json()["in_flight"] == 0:
            break
        await asyncio.sleep(0.05)
    assert (await client.get("/stats")).json()["in_flight"] == 0


async def test_truncated_malformed_and_invented_replies(start: Start) -> None:
    _, truncated = await start(truncated=1.0)
    choice = (await _complete(truncated)).json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert "[[ ## completed ## ]]" not in choice["message"]["content"]
    _, malformed = await start(malformed=1.0)
    content = (await _complete(malformed)).json()["choices"][0]["message"]["content"]
    assert "[" not in content.split("[[ ## verdicts ## ]]")[1].split("[[ ## completed")[0]
    _, invented = await start(invented=1.0)
    content = (await _complete(invented)).json()["choices"][0]["message"]["content"]
    assert "sales.ghost_table_0_0" in content


async def test_faults_can_be_changed_while_running(start: Start) -> None:
    _, client = await start()
    assert (await _complete(client)).status_code == 200
    assert (await client.post("/faults", json={"server_error": 1.0})).status_code == 200
    assert (await client.get("/faults")).json()["server_error"] == 1.0
    assert (await _complete(client)).status_code == 500
    assert (await client.post("/faults", json={})).status_code == 200
    assert (await _complete(client)).status_code == 200
    for bad in ({"server_error": 2}, {"nope": 1}, {"hang_on_tables": "x"}, {"hang_once_on_tables": [1]}, [1]):
        response = await client.post("/faults", json=bad)
        assert response.status_code == 400
        assert response.json()["error"]["message"]


async def test_hang_on_table_hangs_only_chunks_holding_it(start: Start) -> None:
    _, client = await start(hang_on_tables=("hr.employees",), hang_s=30)
    ok = await client.post(
        "/v1/chat/completions", json={"messages": judge_prompt("orders", "### sales.orders\n- id int")}
    )
    assert ok.status_code == 200
    with pytest.raises(httpx.ReadTimeout):
        await client.post("/v1/chat/completions", json={"messages": judge_prompt("x")}, timeout=0.3)


async def test_hang_once_on_table_hangs_only_the_first_call_of_a_prompt(start: Start) -> None:
    _, client = await start(hang_once_on_tables=("hr.employees",), hang_s=30)
    with pytest.raises(httpx.ReadTimeout):
        await client.post("/v1/chat/completions", json={"messages": judge_prompt("x")}, timeout=0.3)
    again = await client.post("/v1/chat/completions", json={"messages": judge_prompt("x")}, timeout=5)
    assert again.status_code == 200
    other = await client.post(
        "/v1/chat/completions", json={"messages": judge_prompt("orders", "### sales.orders\n- id int")}
    )
    assert other.status_code == 200


def test_cli_fault_flags_build_the_config() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = "--rate-limit-rate 0.1 --server-error-rate 0.03 --hang-rate 0.02 --retry-after-s 0.5 "
    flags += "--hang-s 60 --hang-on-table s.a --hang-on-table s.b --hang-once-on-table s.c "
    flags += "--latency-ms tail:200:2000"
    args = parser.parse_args(flags.split())
    faults = config_from_args(args).faults
    assert faults == FaultRates(
        rate_limit=0.1,
        server_error=0.03,
        hang=0.02,
        retry_after_s=0.5,
        hang_s=60,
        hang_on_tables=("s.a", "s.b"),
        hang_once_on_tables=("s.c",),
    )
    with pytest.raises(ValueError, match="add up"):
        config_from_args(parser.parse_args(["--reset-rate", "0.6", "--hang-rate", "0.6"]))


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("rate_limit", LMRateLimitError),
        ("server_error", LMServerError),
        ("reset", LMTransportError),
        ("truncated", AdapterParseError),
        ("malformed", AdapterParseError),
    ],
)
async def test_what_dspy_raises_for_each_fault(start: Start, fault: str, error: type[Exception]) -> None:
    url, _ = await start(**{fault: 1.0, "retry_after_s": 0.5})
    # DSPy's own LM engine (the lean chat-completions LM raises its own errors, which
    # app.llm.failures.classify maps to the same meanings).
    backend = build_backend(
        Settings(llm_model="openai/tablerouter-sim", llm_api_base=f"{url}/v1", llm_lean_chat=False)
    )
    assert backend is not None
    try:
        with (
            dspy.context(lm=backend.lm, adapter=JudgeAdapter(), disable_history=True),
            pytest.raises(error) as raised,
        ):
            await TableJudge().acall(question="orders", tables=TABLES)
    finally:
        await backend.aclose()
    if fault == "rate_limit":
        assert getattr(raised.value, "retry_after", None) == 0.5

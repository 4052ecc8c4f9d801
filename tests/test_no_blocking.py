"""Nothing blocks the event loop: routes and a refresh under asyncio debug mode.

asyncio's debug mode logs every callback (task step) that holds the loop longer than
``slow_callback_duration``; a blocking call on the hot path (a synchronous query, catalog
work on the loop, a sleep) shows up as such a log line. A deliberately blocking callback
first proves the check can fail. The threshold is 0.25 s, not less: the machine is shared,
and in debug mode on a loaded 2-core box an innocent step was measured at 0.17 s wall; a
refresh of this 400-table catalog done on the loop instead of a worker thread takes longer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest

from app.harness.service import service_client
from app.simulator.service import SimulatorConfig, running_simulator
from tests.fixtures.settings import SettingsBuilder
from tests.fixtures.warehouse import SyntheticWarehouse, WarehouseBuilder

SLOW_CALLBACK_S = 0.25


@contextmanager
def slow_callbacks(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Debug mode on the running loop; yields the slow-callback reports made meanwhile."""
    loop = asyncio.get_running_loop()
    found: list[str] = []
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_CALLBACK_S
    caplog.clear()
    try:
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            yield found
    finally:
        loop.set_debug(False)
        messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
        found.extend(m for m in messages if "took" in m)


async def _blocking_step() -> None:
    time.sleep(SLOW_CALLBACK_S * 2)  # noqa: ASYNC251  (the point: a blocking call)


@pytest.fixture
async def warehouse(build_warehouse: WarehouseBuilder) -> AsyncIterator[SyntheticWarehouse]:
    async with build_warehouse(prefix="tr_block", tables=400, questions=6, seeds=(4, 9)) as built:
        yield built


async def test_the_check_sees_a_blocking_call(caplog: pytest.LogCaptureFixture) -> None:
    with slow_callbacks(caplog) as found:
        await asyncio.create_task(_blocking_step())
    assert found, "debug mode did not report a callback that slept"


async def test_routes_and_refresh_do_not_block_the_loop(
    warehouse: SyntheticWarehouse, caplog: pytest.LogCaptureFixture, make_settings: SettingsBuilder
) -> None:
    questions = warehouse.questions
    async with running_simulator(SimulatorConfig(port=0, latency_ms=5, oracle=warehouse.oracle)) as sim:
        settings = make_settings(
            sim_url=sim,
            sources=warehouse.source(),
            chunk_tokens=600,
            shortlist_size=40,
            embedding_model="openai/tablerouter-embed",
            embedding_api_base=f"{sim}/v1",
        )
        # Frozen as tablerouter serve freezes it: a full collection of this process's heap
        # (0.5-1 s) is not a blocking call of the route's, and production does not pay it.
        async with service_client(settings, freeze_heap=True) as client:
            # Warm-up: first-use work (imports, pydantic validators, connection set-up) is not
            # per-route work.
            assert (await client.post("/route", json={"question": "warm up"})).status_code == 200
            with slow_callbacks(caplog) as found:
                routes = [client.post("/route", json={"question": str(q["question"])}) for q in questions]
                responses = await asyncio.gather(*routes)
                refreshed = await client.post("/sources/wh/refresh")
    assert all(r.status_code == 200 for r in responses)
    assert refreshed.status_code == 200
    assert all(r.json()["stats"]["shortlisted"] == 40 for r in responses)
    assert not found, found

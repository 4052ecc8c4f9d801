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
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.demo.synthetic import create_synthetic_warehouse, synthetic_questions, synthetic_tables
from app.harness.service import service_client
from app.settings import Settings
from app.simulator.service import SimulatorConfig, running_simulator

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
async def warehouse(pg_url: str) -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    schema = f"tr_block_{uuid.uuid4().hex[:8]}"
    tables = synthetic_tables(400, schema=schema, seed=4)
    engine = create_async_engine(pg_url)
    await create_synthetic_warehouse(engine, tables, schema=schema)
    try:
        yield schema, synthetic_questions(tables, 6, seed=9)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def test_the_check_sees_a_blocking_call(caplog: pytest.LogCaptureFixture) -> None:
    with slow_callbacks(caplog) as found:
        await asyncio.create_task(_blocking_step())
    assert found, "debug mode did not report a callback that slept"


async def test_routes_and_refresh_do_not_block_the_loop(
    pg_url: str,
    warehouse: tuple[str, list[dict[str, object]]],
    caplog: pytest.LogCaptureFixture,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    schema, questions = warehouse
    oracle = tmp_path_factory.mktemp("oracle") / "oracle.jsonl"
    oracle.write_text("\n".join(json.dumps(q) for q in questions))
    async with running_simulator(SimulatorConfig(port=0, latency_ms=5, oracle=oracle)) as sim:
        settings = Settings.model_validate(
            {
                "sources": {"wh": {"url": pg_url, "schemas": [schema]}},
                "llm_model": "openai/tablerouter-sim",
                "llm_api_base": f"{sim}/v1",
                "chunk_tokens": 600,
                "shortlist_size": 40,
                "embedding_model": "openai/tablerouter-embed",
                "embedding_api_base": f"{sim}/v1",
            }
        )
        async with service_client(settings) as client:
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

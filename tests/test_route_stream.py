"""POST /route as server-sent events, on a real socket: order, the final answer, errors, disconnects."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from httpx_sse import ServerSentEvent, aconnect_sse

from app.api.schemas import RouteResponse
from app.simulator.service import SimulatorConfig, running_simulator
from tests.fixtures.live_server import LiveService
from tests.fixtures.settings import SettingsBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")
QUESTION = "Which customers placed the most orders, and what products were in them?"
SSE = {"accept": "text/event-stream"}
WAIT_SECONDS = 20.0


@pytest.fixture(scope="module")
def stream_settings(
    make_settings: SettingsBuilder, tmp_path_factory: pytest.TempPathFactory
) -> SettingsBuilder:
    return make_settings.extend(
        tmp=tmp_path_factory.mktemp("stream"),
        chunk_tokens=400,
        votes=2,
        llm_max_concurrency=4,
        llm_timeout=60,
        # The stream is compared with a JSON answer of the same route: both must really run.
        route_cache_size=0,
        verdict_cache_size=0,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim_url() -> AsyncIterator[str]:
    async with running_simulator(SimulatorConfig(port=0, latency_ms="uniform:5:20")) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(
    stream_settings: SettingsBuilder, live_server: LiveService, sim_url: str
) -> AsyncIterator[str]:
    settings = stream_settings(sim_url=sim_url)
    with live_server(settings) as url:
        yield url


async def _events(url: str, body: dict[str, Any]) -> list[ServerSentEvent]:
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as client,
        aconnect_sse(client, "POST", "/route", json=body, headers=SSE) as source,
    ):
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [event async for event in source.aiter_sse()]


def _without_run_details(body: dict[str, Any]) -> dict[str, Any]:
    """The answer minus what differs between two runs of the same route.

    The snapshot's age grows, and it stops being stale once the background refresh that
    follows start-up has run, which may fall between the two runs.
    """
    stats = {k: v for k, v in body["stats"].items() if k != "elapsed_ms"}
    varying = {"route_id", "catalog_stale", "catalog_age_s"}
    return {**{k: v for k, v in body.items() if k not in varying}, "stats": stats}


async def test_events_arrive_in_order_and_end_with_the_json_answer(service: str) -> None:
    events = await _events(service, {"question": QUESTION, "top_k": 8})
    names = [e.event for e in events]
    assert names[0] == "progress"
    assert names[-1] == "result"
    assert set(names[:-1]) == {"progress", "partial"}
    progress = [e.json() for e in events if e.event == "progress"]
    total = progress[0]["chunks_total"]
    assert total > 4  # small chunks: the route asks about many
    assert [p["chunks_done"] for p in progress] == list(range(total + 1))
    assert all(p["chunks_total"] == total and p["failed_chunks"] == 0 for p in progress)
    partials = [e.json() for e in events if e.event == "partial"]
    assert partials
    assert all(0 < p["chunks_done"] < total and p["tables"] for p in partials)
    assert set(partials[0]["tables"][0]) == {
        "name",
        "schema",
        "table",
        "score",
        "votes_for",
        "votes_total",
        "reason",
        "via_fk",
    }

    result = events[-1].json()
    async with httpx.AsyncClient(base_url=service, timeout=60) as client:
        plain = (await client.post("/route", json={"question": QUESTION, "top_k": 8})).json()
    assert _without_run_details(result) == _without_run_details(plain)
    assert result["stats"]["chunks"] == total
    assert result["judge_kind"] == "lm"
    # The last partial ranking is built from most votes: it agrees with the answer's top table.
    assert partials[-1]["tables"][0]["name"] in {t["name"] for t in result["tables"]}


async def test_result_data_is_exactly_the_response_body(service: str) -> None:
    events = await _events(service, {"question": "orders", "top_k": 3})
    result = events[-1]
    assert result.event == "result"
    # 'schema_detail' is there only when the request's 'include' asks for it, 'follow_up' only for one.
    assert json.loads(result.data).keys() == RouteResponse.model_fields.keys() - {
        "schema_detail",
        "follow_up",
    }


async def test_errors_before_routing_are_plain_problems(service: str) -> None:
    async with httpx.AsyncClient(base_url=service, timeout=60) as client:
        unknown = await client.post("/route", json={"question": "x", "source": "nope"}, headers=SSE)
        bad_schema = await client.post("/route", json={"question": "x", "schemas": ["nope"]}, headers=SSE)
        invalid = await client.post("/route", json={"question": " "}, headers=SSE)
    assert unknown.status_code == 404
    assert bad_schema.status_code == 422
    assert invalid.status_code == 422
    for response in (unknown, bad_schema, invalid):
        assert response.headers["content-type"] == "application/problem+json"


async def test_lexical_judge_streams_progress_then_result(
    stream_settings: SettingsBuilder, live_server: LiveService
) -> None:
    with live_server(stream_settings()) as url:
        events = await _events(url, {"question": "orders by customer"})
    assert [e.event for e in events] == ["progress", "result"]
    assert events[0].json() == {"chunks_done": 0, "chunks_total": 0, "failed_chunks": 0}
    assert events[1].json()["judge_kind"] == "lexical"


async def test_failing_lm_ends_the_stream_with_a_degraded_result(
    stream_settings: SettingsBuilder, live_server: LiveService
) -> None:
    settings = stream_settings(sim_url="http://127.0.0.1:1", retry_max_attempts=1)
    with live_server(settings) as url:
        events = await _events(url, {"question": QUESTION})
    assert events[-1].event == "result"
    answer = events[-1].json()
    assert answer["degraded"] is True
    assert answer["judge"] == "lexical"
    assert answer["judge_kind"] == "lexical"
    assert answer["tables"]
    progress = [e.json() for e in events if e.event == "progress"]
    assert progress[-1]["failed_chunks"] == progress[-1]["chunks_total"] > 0


async def _sim_stats(sim: httpx.AsyncClient) -> dict[str, int]:
    stats: dict[str, int] = (await sim.get("/stats")).json()
    return stats


async def _until(sim: httpx.AsyncClient, done: Any) -> dict[str, int]:
    """Poll the simulator's counters until ``done(stats)``; bounded, never a timing assertion."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        stats = await _sim_stats(sim)
        if done(stats) or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.05)


async def test_disconnect_cancels_the_routes_lm_calls(
    stream_settings: SettingsBuilder, live_server: LiveService
) -> None:
    async with running_simulator(SimulatorConfig(port=0, latency_ms=60_000)) as sim_url:
        settings = stream_settings(sim_url=sim_url)
        with live_server(settings) as url:
            async with httpx.AsyncClient(base_url=sim_url) as sim:
                async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                    async with aconnect_sse(
                        client, "POST", "/route", json={"question": QUESTION}, headers=SSE
                    ) as source:
                        # Held: a dropped iterator is closed by the GC, which hangs up early.
                        events = source.aiter_sse()
                        assert (await anext(events)).event == "progress"
                        busy = await _until(sim, lambda s: s["in_flight"] >= 4)
                        assert busy["in_flight"] == 4  # the limiter's bound, all waiting on the LM
                    # Leaving the block closed the connection mid-stream.
                    idle = await _until(sim, lambda s: s["in_flight"] == 0)
                assert idle["in_flight"] == 0
                # Cancelled, the route asks for no further chunk.
                assert idle["calls"] == busy["calls"]

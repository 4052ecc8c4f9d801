"""Connection hygiene on a real socket: slow heads and silent bodies are closed, shutdown answers.

The service runs under uvicorn with the options ``tablerouter serve`` takes from the settings
(``app.serving.server_options``), here with one-second head and body timeouts. Raw sockets
play the slow clients: one that sends half a request head (slowloris), one that connects and
sends nothing, one that sends a head announcing a body and then goes silent. The shutdown test
stops the server while a route waits for slow LM calls and gets that route's answer, partial.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.simulator.service import SimulatorConfig, running_simulator
from tests.fixtures.live_server import LiveService
from tests.fixtures.settings import SettingsBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")
HEAD = b"POST /route HTTP/1.1\r\nHost: tablerouter\r\nContent-Type: application/json\r\n"
# Far longer than the timeouts under test: a read that gets here was never closed by the server.
NEVER_S = 30.0


@pytest.fixture(scope="module")
def hygienic(make_settings: SettingsBuilder, tmp_path_factory: pytest.TempPathFactory) -> SettingsBuilder:
    return make_settings.extend(
        tmp=tmp_path_factory.mktemp("connections"), header_timeout_s=1.0, body_timeout_s=1.0
    )


@pytest.fixture(scope="module")
def service(hygienic: SettingsBuilder, live_server: LiveService) -> Iterator[tuple[str, int]]:
    with live_server(hygienic()) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


async def _until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(NEVER_S):
        return await reader.read()


async def test_a_request_head_that_never_completes_gets_408_and_is_closed(service: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*service)
    writer.write(HEAD)  # the head's blank line never comes
    await writer.drain()
    answer = await _until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    writer.close()


async def test_a_silent_connection_is_closed(service: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*service)
    assert (await _until_closed(reader)).startswith(b"HTTP/1.1 408 ")
    writer.close()


async def test_a_kept_alive_connection_gets_the_same_deadline_for_its_next_head(
    service: tuple[str, int],
) -> None:
    reader, writer = await asyncio.open_connection(*service)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: tablerouter\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(NEVER_S):
        status = await reader.readline()
    assert status.startswith(b"HTTP/1.1 200 "), status
    writer.write(b"GET /healthz HTTP/1.1\r\n")  # and then nothing
    await writer.drain()
    assert b"HTTP/1.1 408 " in await _until_closed(reader)
    writer.close()


async def test_a_body_that_goes_silent_gets_a_408_problem_and_is_closed(service: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*service)
    writer.write(HEAD + b"Content-Length: 100\r\n\r\n" + b'{"question": ')
    await writer.drain()
    answer = await _until_closed(reader)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"content-type: application/problem+json" in head.lower()
    assert b"connection: close" in head.lower()
    assert json.loads(body)["type"].endswith("/request-timeout")
    writer.close()


async def test_requests_in_time_are_served(service: tuple[str, int]) -> None:
    host, port = service
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        response = await client.post("/route", json={"question": "Which customers placed the most orders?"})
        assert response.status_code == 200, response.text


async def _first_call(sim: httpx.AsyncClient) -> None:
    """Wait (bounded) until the simulator has been called."""
    async with asyncio.timeout(NEVER_S):
        while True:
            if (await sim.get("/stats")).json()["calls"] > 0:
                return
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture(loop_scope="module")
async def slow_sim() -> AsyncIterator[httpx.AsyncClient]:
    # Calls take 0.05-8 s: when the server stops a moment after the first call, some have
    # answered and some have not.
    async with (
        running_simulator(SimulatorConfig(port=0, latency_ms="uniform:50:8000")) as url,
        httpx.AsyncClient(base_url=url) as sim,
    ):
        yield sim


async def test_shutdown_answers_a_route_in_flight_with_what_finished(
    hygienic: SettingsBuilder, live_server: LiveService, slow_sim: httpx.AsyncClient
) -> None:
    settings = hygienic(
        sim_url=str(slow_sim.base_url),
        shutdown_timeout_s=3.0,
        chunk_tokens=400,
        llm_timeout=60,
        route_deadline_ms=60_000,
        route_cache_size=0,
        verdict_cache_size=0,
    )
    serving = live_server(settings)
    url = serving.__enter__()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=NEVER_S) as client:
            route = asyncio.create_task(
                client.post("/route", json={"question": "Which customers placed the most orders?"})
            )
            await _first_call(slow_sim)
            # Stop the server as SIGTERM would, while the route waits for its calls.
            stopping = asyncio.create_task(asyncio.to_thread(serving.__exit__, None, None, None))
            response = await route
            await stopping
    except BaseException:
        serving.__exit__(None, None, None)
        raise
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    # Cut by the shutdown, not by its deadline: 60 s, and calls of at most 8 s.
    assert answer["partial"] is True
    assert answer["unjudged"]
    assert answer["stats"]["unfinished_chunks"] > 0
    assert answer["stats"]["elapsed_ms"] < settings.route_deadline_ms

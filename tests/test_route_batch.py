"""POST /route/batch: concurrent routes under the shared limiter, in order, each with its own error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.harness.service import service_client
from app.settings import Settings
from app.simulator.service import SimulatorConfig, running_simulator

pytestmark = pytest.mark.asyncio(loop_scope="module")
MAX_CONCURRENCY = 3
MAX_BATCH = 4
QUESTIONS = [
    "Which customers placed the most orders?",
    "Total revenue per product category",
    "Which suppliers deliver the products in stock?",
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim_url() -> AsyncIterator[str]:
    async with running_simulator(SimulatorConfig(port=0, latency_ms="uniform:10:30")) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.model_validate(
        {
            "demo_warehouse_path": str(tmp_path_factory.mktemp("batch") / "demo.db"),
            "chunk_tokens": 600,
            "llm_model": "openai/tablerouter-sim",
            "llm_api_base": f"{sim_url}/v1",
            "llm_max_concurrency": MAX_CONCURRENCY,
            "max_batch": MAX_BATCH,
        }
    )
    async with service_client(settings) as c:
        yield c


async def test_results_in_order_each_with_its_own_error(client: httpx.AsyncClient, sim_url: str) -> None:
    requests: list[dict[str, Any]] = [
        {"question": QUESTIONS[0], "top_k": 5},
        {"question": QUESTIONS[1], "source": "nope"},
        {"question": QUESTIONS[2], "schemas": ["nope"]},
        {"question": QUESTIONS[1], "top_k": 5},
    ]
    async with httpx.AsyncClient(base_url=sim_url) as sim:
        await sim.post("/stats/reset")
        response = await client.post("/route/batch", json={"requests": requests})
        stats = (await sim.get("/stats")).json()
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 4
    first, unknown_source, unknown_schema, last = results
    assert first["error"] is None
    assert last["error"] is None
    assert unknown_source["result"] is None
    assert unknown_source["error"]["status"] == 404
    assert unknown_source["error"]["type"].endswith("/not-found")
    assert unknown_schema["result"] is None
    assert unknown_schema["error"]["status"] == 422
    assert "nope" in unknown_schema["error"]["detail"]
    # In order: each answer is the one its question gets alone.
    for item, question in ((first, QUESTIONS[0]), (last, QUESTIONS[1])):
        alone = (await client.post("/route", json={"question": question, "top_k": 5})).json()
        assert [t["name"] for t in item["result"]["tables"]] == [t["name"] for t in alone["tables"]]
    chunks = first["result"]["stats"]["chunks"] + last["result"]["stats"]["chunks"]
    assert stats["calls"] == chunks
    # Both routes ran at once, yet never past the one shared limit.
    assert 1 < stats["max_in_flight"] <= MAX_CONCURRENCY


async def test_batch_runs_concurrently_with_single_routes_under_one_limit(
    client: httpx.AsyncClient, sim_url: str
) -> None:
    async with httpx.AsyncClient(base_url=sim_url) as sim:
        await sim.post("/stats/reset")
        batch, single = await asyncio.gather(
            client.post("/route/batch", json={"requests": [{"question": q} for q in QUESTIONS]}),
            client.post("/route", json={"question": QUESTIONS[0]}),
        )
        stats = (await sim.get("/stats")).json()
    assert batch.status_code == single.status_code == 200
    assert stats["max_in_flight"] <= MAX_CONCURRENCY


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"requests": [{"question": "orders"}] * (MAX_BATCH + 1)}, "at most 4"),
        ({"requests": []}, "requests"),
        ({"requests": [{"question": "orders"}, {"question": " "}]}, "requests.1.question"),
        ({"questions": ["orders"]}, "questions"),
    ],
)
async def test_a_bad_batch_is_one_problem(client: httpx.AsyncClient, body: Any, needle: str) -> None:
    response = await client.post("/route/batch", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert needle in response.json()["detail"]

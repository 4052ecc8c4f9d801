"""The route memory's dense side on real parts: the simulator's /v1/embeddings over a real socket,
a PostgreSQL warehouse, services over HTTP sharing one store.

The simulator embeds a hashed bag of words, so it cannot tell a synonym: what it can show is a
question the words' cosine misses and the embeddings find. Here the new question shares two of
its four content words ("customer", "orders") with a remembered one; most of this memory's
questions have those words, so their rarity weight is small, and the new question's two words
the memory never saw count against it: the cosine of words stays under MEMORY_MIN_SIMILARITY.
The bag-of-words embedding weighs every word alike (cosine 0.71). A neural model's judgement of
a paraphrase is what no simulator can show.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.harness.service import running_service
from app.simulator.service import SimulatorConfig, running_simulator
from tests.fixtures.settings import SettingsBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")

TABLES = ("customers", "orders", "shipments", "products", "order_lines", "weather_stations", "rainfall")
REMEMBERED = [
    ("total of the orders of each customer", ("customers", "orders")),
    ("orders shipped by each carrier", ("orders", "shipments")),
    ("products in the orders of last week", ("orders", "order_lines", "products")),
    ("customers with no orders", ("customers", "orders")),
    ("rainfall at each weather station", ("weather_stations", "rainfall")),
    ("newest orders of a customer", ("customers", "orders")),
]
PARAPHRASE = "how much did each customer spend on their orders altogether"
EMBED_MODEL = "openai/tablerouter-embed"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def schema(pg_url: str) -> AsyncIterator[str]:
    name = f"memdense_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{name}"'))
            for table in TABLES:
                await conn.execute(
                    text(f'CREATE TABLE "{name}".{table} (id integer PRIMARY KEY, label text)')
                )
        yield name
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        await engine.dispose()


def _builder(pg_url: str, schema: str, store: str) -> SettingsBuilder:
    return SettingsBuilder().extend(
        sources={"shop": {"url": pg_url, "schemas": [schema]}},
        llm_model=None,
        database_url=store,
        memory_refresh_s=0,
    )


async def _similar(client: httpx.AsyncClient, question: str) -> list[dict[str, Any]]:
    response = await client.get("/sources/shop/memory", params={"question": question})
    assert response.status_code == 200, response.text
    similar: list[dict[str, Any]] = response.json()["similar"]
    return similar


async def _route(client: httpx.AsyncClient, question: str) -> dict[str, Any]:
    response = await client.post("/route", json={"question": question, "source": "shop", "top_k": 3})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _dead_port() -> int:
    with socket.socket() as probe:  # bound, then closed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_paraphrase_is_found_through_embeddings_and_not_without(
    pg_url: str, schema: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    store = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('memdense') / 'store.db'}"
    builder = _builder(pg_url, schema, store)
    rows = [{"question": q, "tables": [f"{schema}.{t}" for t in ts]} for q, ts in REMEMBERED]
    async with running_simulator(SimulatorConfig(port=0)) as sim:
        settings = builder(embedding_model=EMBED_MODEL, embedding_api_base=f"{sim}/v1")
        async with (
            running_service(settings) as (url, _),
            httpx.AsyncClient(base_url=url, timeout=60) as client,
        ):
            imported = await client.post("/sources/shop/memory", json={"rows": rows})
            assert imported.json()["imported"] == len(REMEMBERED)
            similar = await _similar(client, PARAPHRASE)
            assert similar[0]["tables"] == [f"{schema}.customers", f"{schema}.orders"]
            assert similar[0]["similarity"] > 0.6  # (0.71 - floor 0.2) / 0.8: the embeddings' cosine
            routed = await _route(client, PARAPHRASE)
            assert routed["stats"]["memory_matches"] >= 1
            lent = {t["name"] for t in routed["tables"] if "similar past questions used it" in t["reason"]}
            assert lent == {f"{schema}.customers", f"{schema}.orders"}
    async with running_service(builder()) as (url, _), httpx.AsyncClient(base_url=url, timeout=60) as client:
        assert await _similar(client, PARAPHRASE) == []
        routed = await _route(client, PARAPHRASE)
        assert routed["stats"]["memory_matches"] == 0
        assert not any("similar past questions" in t["reason"] for t in routed["tables"])


async def test_an_embeddings_outage_leaves_the_memory_lexical(
    pg_url: str, schema: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    store = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('memdown') / 'store.db'}"
    settings = _builder(pg_url, schema, store)(
        embedding_model=EMBED_MODEL, embedding_api_base=f"http://127.0.0.1:{_dead_port()}/v1"
    )
    rows = [{"question": q, "tables": [f"{schema}.{t}" for t in ts]} for q, ts in REMEMBERED]
    async with running_service(settings) as (url, _), httpx.AsyncClient(base_url=url, timeout=60) as client:
        imported = await client.post("/sources/shop/memory", json={"rows": rows})
        assert imported.status_code == 200, imported.text
        assert imported.json()["imported"] == len(REMEMBERED)
        assert await _similar(client, PARAPHRASE) == []
        routed = await _route(client, "rainfall at each weather station")
        assert routed["stats"]["memory_matches"] >= 1
        assert routed["stats"]["memory_similarity"] == 1.0

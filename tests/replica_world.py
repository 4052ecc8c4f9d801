"""What the scale-out tests' replicas share: a warehouse, an LM simulator, a Redis key prefix.

``replica_world`` builds a 40-table synthetic warehouse in PostgreSQL and an oracle simulator
that knows its questions, and yields the environment the replicas start with; the caller adds
what its tests are about (limits, caches). ``redis_prefix`` is a key prefix of one test module
alone, its keys deleted afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from redis import Redis as SyncRedis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.demo.synthetic import create_synthetic_warehouse, synthetic_questions, synthetic_tables
from app.harness.replicas import ReplicaForker
from app.simulator.service import SimulatorConfig, running_simulator

SIM_MODEL = "openai/tablerouter-sim"


@dataclass
class World:
    """The replicas' environment, the warehouse's questions, the simulator, a scratch folder."""

    env: dict[str, str]
    questions: list[str]
    sim_url: str
    workdir: Path
    spawn: ReplicaForker


@asynccontextmanager
async def replica_world(
    pg_url: str,
    workdir: Path,
    *,
    name: str,
    seeds: tuple[int, int],
    latency_ms: str,
    env: Mapping[str, str],
) -> AsyncIterator[World]:
    """A warehouse (schema ``name_<random>``; table and question seeds) and a simulator answering
    after ``latency_ms``; ``env`` is added to the replicas' base environment."""
    forker = ReplicaForker()  # imports the service while the warehouse is built
    schema = f"{name}_{uuid.uuid4().hex[:8]}"
    tables = synthetic_tables(40, schema=schema, seed=seeds[0])
    engine = create_async_engine(pg_url)
    await create_synthetic_warehouse(engine, tables, schema=schema)
    questions = synthetic_questions(tables, 8, seed=seeds[1])
    oracle = workdir / "oracle.jsonl"
    oracle.write_text("\n".join(json.dumps(q) for q in questions))
    config = SimulatorConfig(port=0, latency_ms=latency_ms, oracle=oracle, policy="oracle")
    try:
        async with running_simulator(config) as sim_url:
            base = {
                "TABLEROUTER_SOURCES": json.dumps({"wh": {"url": pg_url, "schemas": [schema]}}),
                "TABLEROUTER_LLM_MODEL": SIM_MODEL,
                "TABLEROUTER_LLM_API_BASE": f"{sim_url}/v1",
                "TABLEROUTER_CHUNK_TOKENS": "400",
                "TABLEROUTER_VOTES": "1",
            }
            yield World({**base, **env}, [q["question"] for q in questions], sim_url, workdir, forker)
    finally:
        forker.close()
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


@contextmanager
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of its own; its keys are deleted afterwards."""
    name = f"tr-test-{uuid.uuid4().hex[:10]}"
    yield name
    with SyncRedis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{name}:*"))
        if keys:
            client.delete(*keys)

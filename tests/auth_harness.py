"""A world for the key tests: a PostgreSQL warehouse with tables some keys may not see, the LM
simulator over a real socket, the service with auth on, and keys made through its admin API.

Source ``sales`` has a public schema (customers, orders, order_lines) and a secret one
(salary_ledger, bonus_payments); ``orders`` has a foreign key into the secret schema, so a key
granted only the public schema must not even learn that name from a card or a join path.
Source ``hr`` (its own schema) is granted to no test key but ``hr``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.harness.service import service_app_client
from app.settings import Settings
from app.simulator.service import SimulatorConfig, running_simulator

ADMIN_KEY = "test-admin-" + uuid.uuid4().hex
SECRET_TABLES = ("salary_ledger", "bonus_payments")
# Names the question asks for: the secret tables by name, so the lexical simulator would pick them.
QUESTION = "total salary_ledger amount and bonus_payments of each customer with their orders"


@dataclass
class GrantWorld:
    client: httpx.AsyncClient
    app: FastAPI
    sim_url: str
    pub: str  # the public schema of source sales
    sec: str  # the secret schema of source sales
    hr: str  # the schema of source hr
    keys: dict[str, str] = field(default_factory=dict)  # name → secret
    key_ids: dict[str, str] = field(default_factory=dict)  # name → id

    def auth(self, name: str) -> dict[str, str]:
        """The Authorization header of key ``name`` (``admin``: the static admin key)."""
        secret = ADMIN_KEY if name == "admin" else self.keys[name]
        return {"Authorization": f"Bearer {secret}"}

    def secret_names(self) -> list[str]:
        """Strings no restricted key may ever see: the secret tables and schema, and hr's."""
        return [*SECRET_TABLES, self.sec, self.hr, "staff_directory"]


def _statements(pub: str, sec: str, hr: str) -> list[str]:
    return [
        f'CREATE SCHEMA "{pub}"',
        f'CREATE SCHEMA "{sec}"',
        f'CREATE SCHEMA "{hr}"',
        f'CREATE TABLE "{sec}".salary_ledger (id integer PRIMARY KEY, amount numeric, paid_on date)',
        f'CREATE TABLE "{sec}".bonus_payments (id integer PRIMARY KEY,'
        f' ledger_id integer REFERENCES "{sec}".salary_ledger (id), amount numeric)',
        f'CREATE TABLE "{pub}".customers (id integer PRIMARY KEY, name text NOT NULL)',
        f'CREATE TABLE "{pub}".orders (id integer PRIMARY KEY,'
        f' customer_id integer NOT NULL REFERENCES "{pub}".customers (id),'
        f' ledger_id integer REFERENCES "{sec}".salary_ledger (id), total numeric)',
        f'CREATE TABLE "{pub}".order_lines (id integer PRIMARY KEY,'
        f' order_id integer NOT NULL REFERENCES "{pub}".orders (id), product text, amount numeric)',
        f'CREATE TABLE "{hr}".staff_directory (id integer PRIMARY KEY, name text, salary numeric)',
    ]


async def make_key(client: httpx.AsyncClient, name: str, **body: Any) -> tuple[str, str]:
    """Create a key through the admin API; (secret, id)."""
    response = await client.post(
        "/keys", json={"name": name, **body}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    return created["secret"], created["key"]["id"]


@asynccontextmanager
async def grant_world(pg_url: str, **overrides: Any) -> AsyncIterator[GrantWorld]:
    """The world above; ``overrides`` go to the service's settings."""
    tag = uuid.uuid4().hex[:8]
    pub, sec, hr = f"tr_pub_{tag}", f"tr_sec_{tag}", f"tr_hr_{tag}"
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as conn:
            for statement in _statements(pub, sec, hr):
                await conn.execute(text(statement))
        async with running_simulator(SimulatorConfig(port=0, latency_ms="uniform:1:3")) as sim_url:
            values: dict[str, Any] = {
                "auth": True,
                "admin_key": ADMIN_KEY,
                "sources": {
                    "sales": {"url": pg_url, "schemas": [pub, sec]},
                    "hr": {"url": pg_url, "schemas": [hr]},
                },
                "llm_model": "openai/tablerouter-sim",
                "llm_api_base": f"{sim_url}/v1",
                "llm_timeout": 10,
                "chunk_tokens": 200,  # a few tables per chunk: several prompts per route
                "relevance_threshold": 0.0,
                "key_rate_limit": 0,
                "key_daily_tokens": 0,
                **overrides,
            }
            async with service_app_client(Settings.model_validate(values)) as (app, client):
                world = GrantWorld(client, app, sim_url, pub, sec, hr)
                grants = {
                    "pub": {"sales": [f"{pub}.*"]},
                    "pub2": {"sales": [f"{pub}.*"]},
                    "hr": {"hr": ["*"]},
                    "nothing": {"elsewhere": ["*"]},
                }
                for name, grant in grants.items():
                    world.keys[name], world.key_ids[name] = await make_key(client, name, grants=grant)
                yield world
    finally:
        async with engine.begin() as conn:
            for schema in (pub, sec, hr):
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()

"""Request bodies at the edge: control characters and keys that could see nothing are refused.

A NUL cannot be stored in PostgreSQL text; before it was refused at the edge, one in a key's name
answered 500 and one in a question broke the route log's batch insert. Each body endpoint is
sent one in each of its string fields, on a PostgreSQL and a SQLite store.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.api.problems import PROBLEM_JSON
from app.harness.service import service_client
from app.harness.stores import STORE_BACKENDS, fresh_store_url
from tests.fixtures.auth import ADMIN_KEY
from tests.fixtures.settings import SettingsBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
KEY = {"name": "bi", "grants": {"demo": ["main.*"]}}
ROUTE = {"question": "customers and their orders", "source": "demo"}


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=STORE_BACKENDS)
async def client(
    request: pytest.FixtureRequest, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    tmp: Path = tmp_path_factory.mktemp("text")
    async with fresh_store_url(request.param, pg_url, tmp) as store_url:
        settings = SettingsBuilder()(
            tmp=tmp, auth=True, admin_key=ADMIN_KEY, database_url=store_url, key_rate_limit=0
        )
        async with service_client(settings) as c:
            yield c


def _with(body: dict[str, Any], path: tuple[str | int, ...], value: str) -> dict[str, Any]:
    """``body`` with the string at ``path`` replaced by ``value``."""
    copy: Any = json.loads(json.dumps(body))
    place = copy
    for step in path[:-1]:
        place = place[step]
    place[path[-1]] = value
    return dict(copy)


CASES = [
    ("/route", ROUTE, ("question",), "question"),
    ("/route", ROUTE, ("source",), "source"),
    ("/route", {**ROUTE, "schemas": ["main"]}, ("schemas", 0), "schemas"),
    ("/route/batch", {"requests": [ROUTE]}, ("requests", 0, "question"), "requests"),
    ("/keys", KEY, ("name",), "name"),
    ("/keys", KEY, ("grants", "demo", 0), "grants"),
    ("/routes/{route_id}/feedback", {"sql": "SELECT 1", "used_tables": ["x"]}, ("sql",), "sql"),
    ("/routes/{route_id}/feedback", {"used_tables": ["main.orders"]}, ("used_tables", 0), "used_tables"),
]


@pytest.mark.parametrize("bad", ["\x00", "\x1b[2J", "\x7f"], ids=["nul", "escape", "del"])
@pytest.mark.parametrize(("path", "body", "where", "field"), CASES, ids=[f"{c[0]}:{c[3]}" for c in CASES])
async def test_a_control_character_in_any_body_string_is_a_422_naming_the_field(
    client: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    where: tuple[str | int, ...],
    field: str,
    bad: str,
) -> None:
    if "{route_id}" in path:
        routed = await client.post("/route", json=ROUTE, headers=ADMIN)
        path = path.format(route_id=routed.json()["route_id"])
    response = await client.post(path, json=_with(body, where, f"a{bad}b"), headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert field in response.json()["detail"]
    assert "control characters" in response.json()["detail"]


async def test_tab_and_newline_in_a_question_are_kept(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/route", json={**ROUTE, "question": "customers\tand their\r\norders"}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    # The store took the route: a key made after it works, and so does the next route.
    assert (await client.post("/keys", json=KEY, headers=ADMIN)).status_code == 201
    assert (await client.post("/route", json=ROUTE, headers=ADMIN)).status_code == 200


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"name": "blind"}, "needs a grant"),
        ({"name": "blind", "grants": {}}, "needs a grant"),
        ({"name": "typo", "grants": {"dmeo": ["*"]}}, "unknown sources ['dmeo']"),
        ({"name": "half", "grants": {"demo": ["*"], "elsewhere": ["*"]}}, "unknown sources ['elsewhere']"),
    ],
    ids=["no-grants", "empty-grants", "unknown-source", "one-unknown"],
)
async def test_a_key_that_could_see_nothing_is_refused(
    client: httpx.AsyncClient, body: dict[str, Any], said: str
) -> None:
    response = await client.post("/keys", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert said in response.json()["detail"]
    listed = (await client.get("/keys", headers=ADMIN)).json()["keys"]
    assert body["name"] not in {key["name"] for key in listed}


async def test_an_admin_key_needs_no_grant(client: httpx.AsyncClient) -> None:
    response = await client.post("/keys", json={"name": "ops", "admin": True}, headers=ADMIN)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--source", "dmeo"], "unknown sources ['dmeo']"),
        (["--source", "demo", "--source", "elsewhere:x.*"], "unknown sources ['elsewhere']"),
        ([], "give at least one --source"),
    ],
    ids=["unknown-source", "one-unknown", "no-grant"],
)
async def test_keys_create_refuses_a_key_that_could_see_nothing(
    tmp_path: Path, args: list[str], said: str
) -> None:
    env = {
        **os.environ,
        "TABLEROUTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
        "TABLEROUTER_SOURCES": "{}",
    }
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "app.cli", "keys", "create", "--name", "bi", *args],
        env=env,
        stdout=PIPE,
        stderr=PIPE,
    )
    out, err = (part.decode() for part in await proc.communicate())
    assert proc.returncode == 2, err
    assert err.strip().splitlines() == [err.strip()]
    assert said in err
    assert out == ""  # no secret: no key was made

"""The MCP server at /mcp, through the SDK's own client over real HTTP, against a running service.

Keys on, the LM simulator judging by word overlap: an agent over MCP gets the answers a frontend
gets over REST, and a key granted only the public schema learns nothing of the secret one
through any tool (the question names the secret tables outright).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
import pytest_asyncio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from tests.fixtures.auth import QUESTION, SECRET_TABLES, GrantWorld, GrantWorldBuilder, make_key

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(make_grant_world: GrantWorldBuilder) -> AsyncIterator[GrantWorld]:
    async with make_grant_world(live=True) as w:
        yield w


@asynccontextmanager
async def mcp_client(world: GrantWorld, key: str) -> AsyncIterator[Client]:
    """The SDK's client on the service's /mcp, sending key ``key``'s Bearer token."""
    http = httpx2.AsyncClient(headers=world.auth(key), timeout=60)
    async with http, Client(streamable_http_client(f"{world.url}/mcp", http_client=http)) as client:
        yield client


def _structured(result: CallToolResult) -> dict[str, Any]:
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


def _ageless(listing: dict[str, Any]) -> list[dict[str, Any]]:
    """Sources without their age, which grows between two reads."""
    return [{k: v for k, v in s.items() if k != "catalog_age_s"} for s in listing["sources"]]


def _leaks(world: GrantWorld, result: CallToolResult) -> list[str]:
    text = json.dumps(result.structured_content) + "".join(getattr(c, "text", "") for c in result.content)
    return [name for name in world.secret_names() if name in text]


async def test_the_tools_are_typed(world: GrantWorld) -> None:
    async with mcp_client(world, "pub") as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
    assert sorted(listed) == ["describe_tables", "list_sources", "route", "send_feedback"]
    route = listed["route"]
    assert route.input_schema["required"] == ["question"]
    assert {"previous_route_id", "history", "include", "top_k"} <= set(route.input_schema["properties"])
    assert route.output_schema is not None
    assert "tables" in route.output_schema["properties"]
    assert all(t.output_schema for t in listed.values())


async def test_route_describe_and_feedback_answer_as_rest_does(world: GrantWorld) -> None:
    question = {"question": "customers and their orders", "source": "sales", "include": ["columns"]}
    rest = await world.client.post("/route", json=question, headers=world.auth("pub"))
    assert rest.status_code == 200, rest.text
    reported: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append((progress, total))

    async with mcp_client(world, "pub") as client:
        # Another question first, so the route is judged rather than served from the cache.
        fresh = await client.call_tool(
            "route", {"question": "order lines per order", "source": "sales"}, progress_callback=on_progress
        )
        routed = await client.call_tool("route", question)
        described = await client.call_tool(
            "describe_tables", {"source": "sales", "tables": [f"{world.pub}.orders", "customers"]}
        )
        sources = await client.call_tool("list_sources", {})
        answer = _structured(routed)
        follow_up = await client.call_tool(
            "route",
            {
                "question": "only those above 100 in total?",
                "source": "sales",
                "previous_route_id": answer["route_id"],
            },
        )
        sent = await client.call_tool(
            "send_feedback", {"route_id": answer["route_id"], "used_tables": [f"{world.pub}.orders"]}
        )
    assert not fresh.is_error
    assert not routed.is_error
    # Progress notifications while the LM judged: chunks judged of chunks planned, ending at all.
    assert len(reported) >= 2
    assert reported[-1][0] == reported[-1][1]
    assert reported[-1][0] >= 2
    rest_body = rest.json()
    assert [(t["name"], t["score"]) for t in answer["tables"]] == [
        (t["name"], t["score"]) for t in rest_body["tables"]
    ]
    assert answer["schema_detail"] == rest_body["schema_detail"]
    assert f"{world.pub}.orders" in routed.content[0].text  # type: ignore[union-attr]
    kept = _structured(follow_up)["follow_up"]["kept_from_previous"]
    assert f"{world.pub}.orders" in kept
    assert "kept from the earlier turn: " in follow_up.content[0].text  # type: ignore[union-attr]
    listing = await world.client.get("/sources/sales/tables", headers=world.auth("pub"))
    by_name = {t["name"]: t for t in listing.json()["tables"]}
    assert _structured(described)["tables"] == [
        by_name[f"{world.pub}.orders"],
        by_name[f"{world.pub}.customers"],
    ]
    rest_sources = await world.client.get("/sources", headers=world.auth("pub"))
    assert _ageless(_structured(sources)) == _ageless(rest_sources.json())
    assert not sent.is_error, sent.content
    logged = await world.client.get(f"/routes/{answer['route_id']}", headers=world.auth("pub"))
    assert logged.json()["feedback"]["used_tables"] == [f"{world.pub}.orders"]


async def test_a_restricted_key_sees_nothing_more_through_any_tool(world: GrantWorld) -> None:
    async with mcp_client(world, "admin") as admin:
        control = await admin.call_tool("route", {"question": QUESTION, "source": "sales"})
    assert {f"{world.sec}.{t}" for t in SECRET_TABLES} <= {t["name"] for t in _structured(control)["tables"]}
    async with mcp_client(world, "pub") as client:
        results = {
            "route": await client.call_tool(
                "route", {"question": QUESTION, "source": "sales", "min_score": 0}
            ),
            "sources": await client.call_tool("list_sources", {}),
            "describe": await client.call_tool(
                "describe_tables", {"source": "sales", "tables": [f"{world.pub}.orders"]}
            ),
            "describe hidden": await client.call_tool(
                "describe_tables", {"source": "sales", "tables": ["salary_ledger"]}
            ),
            "describe missing": await client.call_tool(
                "describe_tables", {"source": "sales", "tables": ["no_such_table"]}
            ),
            "hr": await client.call_tool("route", {"question": QUESTION, "source": "hr"}),
        }
        route_id = _structured(results["route"])["route_id"]
        results["feedback hidden"] = await client.call_tool(
            "send_feedback", {"route_id": route_id, "used_tables": ["salary_ledger"]}
        )
        results["feedback missing"] = await client.call_tool(
            "send_feedback", {"route_id": route_id, "used_tables": ["no_such_table"]}
        )
    # The errors about a hidden table echo only the name asked, exactly as for a missing one.
    for kind in ("describe", "feedback"):
        hidden, missing = _structured(results[f"{kind} hidden"]), _structured(results[f"{kind} missing"])
        assert json.dumps(hidden).replace("salary_ledger", "X") == json.dumps(missing).replace(
            "no_such_table", "X"
        )
    echoes = {"describe hidden", "feedback hidden"}
    leaks = {name: _leaks(world, r) for name, r in results.items() if name not in echoes}
    assert leaks == {name: [] for name in leaks}
    assert not results["route"].is_error
    assert not results["describe"].is_error
    # The orders table's FK into the secret schema is left out, as over REST.
    foreign_keys = _structured(results["describe"])["tables"][0]["foreign_keys"]
    assert [fk["ref_table"] for fk in foreign_keys] == [f"{world.pub}.customers"]
    # A hidden table is as unknown as a missing one; an ungranted source as a missing one.
    for name, status in (("describe hidden", 422), ("hr", 404), ("feedback hidden", 422)):
        assert results[name].is_error, name
        assert _structured(results[name])["status"] == status, name
    nowhere = await world.client.post(
        "/route", json={"question": QUESTION, "source": "nowhere"}, headers=world.auth("pub")
    )
    assert _structured(results["hr"])["detail"].replace("hr", "X") == nowhere.json()["detail"].replace(
        "nowhere", "X"
    )


async def test_without_a_valid_key_mcp_answers_401(world: GrantWorld) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=world.url or "") as raw:
        none = await raw.post("/mcp", json=initialize, headers=headers)
        wrong = await raw.post(
            "/mcp", json=initialize, headers={**headers, "Authorization": "Bearer trk_nope"}
        )
    for response in (none, wrong):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_mcp_routes_count_against_the_keys_rate(world: GrantWorld) -> None:
    secret, _ = await make_key(world.client, "one-a-minute", grants={"sales": ["*"]}, rate_limit=1)
    world.keys["one-a-minute"] = secret
    async with mcp_client(world, "one-a-minute") as client:
        first = await client.call_tool("route", {"question": "orders", "source": "sales"})
        second = await client.call_tool("route", {"question": "orders", "source": "sales"})
    rest = await world.client.post(
        "/route", json={"question": "orders", "source": "sales"}, headers=world.auth("one-a-minute")
    )
    assert not first.is_error
    assert second.is_error
    assert _structured(second)["status"] == 429
    assert _structured(second)["retry_after"] >= 1
    assert rest.status_code == 429

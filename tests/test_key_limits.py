"""Per-key limits (routes per minute, LM tokens per day → 429 with Retry-After), the request
limits that hold whatever the key, and ``tablerouter keys`` against real stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.cli import main
from app.harness.service import service_client
from app.harness.stores import STORE_BACKENDS, fresh_store_url
from app.settings import Settings, get_settings
from app.simulator.service import SimulatorConfig, running_simulator
from tests.fixtures.auth import ADMIN_KEY, make_key

pytestmark = pytest.mark.asyncio(loop_scope="module")
QUESTION = "Which customers placed the most orders?"
Cli = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    tmp = tmp_path_factory.mktemp("limits")
    async with running_simulator(SimulatorConfig(port=0, latency_ms=1)) as sim_url:
        settings = Settings(
            auth=True,
            admin_key=ADMIN_KEY,
            demo_warehouse_path=str(tmp / "demo.db"),
            llm_model="openai/tablerouter-sim",
            llm_api_base=f"{sim_url}/v1",
            key_rate_limit=3,
            key_daily_tokens=0,
            # Every route reaches the LM and spends tokens.
            route_cache_size=0,
            verdict_cache_size=0,
        )
        async with service_client(settings) as c:
            yield c


async def _key(client: httpx.AsyncClient, **body: Any) -> dict[str, str]:
    secret, _ = await make_key(client, "limited", grants={"demo": ["*"]}, **body)
    return {"Authorization": f"Bearer {secret}"}


def _is_429(response: httpx.Response, kind: str) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith(f"/{kind}")
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    assert response.json()["retry_after"] == retry_after
    return retry_after


async def test_the_default_rate_limit_answers_429_with_retry_after(client: httpx.AsyncClient) -> None:
    headers = await _key(client)
    for _ in range(3):
        assert (await client.post("/route", json={"question": QUESTION}, headers=headers)).status_code == 200
    retry_after = _is_429(
        await client.post("/route", json={"question": QUESTION}, headers=headers), "rate-limited"
    )
    assert retry_after <= 20  # one route of 3 per minute comes back within 20 s
    # Streams count too.
    streamed = await client.post(
        "/route", json={"question": QUESTION}, headers={**headers, "Accept": "text/event-stream"}
    )
    _is_429(streamed, "rate-limited")


async def test_a_batch_counts_each_route(client: httpx.AsyncClient) -> None:
    headers = await _key(client, rate_limit=5)
    batch = {"requests": [{"question": QUESTION}] * 4}
    assert (await client.post("/route/batch", json=batch, headers=headers)).status_code == 200
    _is_429(
        await client.post("/route/batch", json={"requests": [{"question": QUESTION}] * 2}, headers=headers),
        "rate-limited",
    )
    # Over the limit at once: it would never fit.
    bigger = {"requests": [{"question": QUESTION}] * 6}
    fresh = await _key(client, rate_limit=5)
    assert _is_429(await client.post("/route/batch", json=bigger, headers=fresh), "rate-limited") == 60


async def test_limits_are_per_key_and_can_be_lifted(client: httpx.AsyncClient) -> None:
    spent = await _key(client)
    for _ in range(3):
        await client.post("/route", json={"question": QUESTION}, headers=spent)
    other = await _key(client)
    assert (await client.post("/route", json={"question": QUESTION}, headers=other)).status_code == 200
    unlimited = await _key(client, rate_limit=0)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for headers in (unlimited, admin):
        for _ in range(5):
            assert (
                await client.post("/route", json={"question": QUESTION}, headers=headers)
            ).status_code == 200


def _tokens(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    stats = response.json()["stats"]
    return int(stats["prompt_tokens"] + stats["completion_tokens"])


async def test_the_daily_token_budget_cuts_the_last_route_then_answers_429_until_midnight(
    client: httpx.AsyncClient,
) -> None:
    route = {"question": QUESTION}
    whole = _tokens(await client.post("/route", json=route, headers=await _key(client, rate_limit=0)))
    budget = whole * 3 // 2
    headers = await _key(client, rate_limit=0, daily_tokens=budget)
    first = await client.post("/route", json=route, headers=headers)
    assert first.json()["budget_cut"] is False
    # The second route holds what the day has left and plans to fit it: fewer tables, same key.
    second = await client.post("/route", json=route, headers=headers)
    assert second.json()["budget_cut"] is True
    assert second.json()["budget_cut_reason"] == f"the key's daily budget of {budget} LM tokens"
    assert second.json()["budget_unjudged"]
    spent = _tokens(first) + _tokens(second)
    assert budget - whole // 4 <= spent <= budget * 1.05
    retry_after = _is_429(await client.post("/route", json=route, headers=headers), "token-budget-spent")
    assert retry_after <= 24 * 3600
    batch = await client.post("/route/batch", json={"requests": [route]}, headers=headers)
    if batch.status_code == 200:  # admitted (the day not spent to the token), each route refused
        (item,) = batch.json()["results"]
        assert item["error"]["status"] == 429
        assert item["error"]["type"].endswith("/token-budget-spent")
    else:
        _is_429(batch, "token-budget-spent")
    # Nothing fits in 50 tokens: refused before any LM call, not answered over the budget.
    tiny = await _key(client, rate_limit=0, daily_tokens=50)
    refused = await client.post("/route", json=route, headers=tiny)
    _is_429(refused, "token-budget-spent")
    assert "budget of 50 LM tokens: 50 LM tokens left" in refused.json()["detail"]


async def test_request_limits_hold_with_a_key(client: httpx.AsyncClient) -> None:
    headers = await _key(client, rate_limit=0)
    too_long = await client.post("/route", json={"question": "x" * 4001}, headers=headers)
    assert too_long.status_code == 422
    top_k = await client.post("/route", json={"question": QUESTION, "top_k": 501}, headers=headers)
    assert top_k.status_code == 422
    huge = await client.post(
        "/route",
        content=b'{"question": "' + b"x" * (70 * 1024) + b'"}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    batch = await client.post("/route/batch", json={"requests": [{"question": "q"}] * 33}, headers=headers)
    assert batch.status_code == 422


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``tablerouter keys ...`` in this process (a fresh interpreter takes seconds to import the app)."""

    async def run(store_url: str, *args: str) -> tuple[int, str, str]:
        monkeypatch.setenv("TABLEROUTER_DATABASE_URL", store_url)
        get_settings.cache_clear()
        try:
            code = await asyncio.to_thread(main, ["keys", *args])
        except SystemExit as exc:  # argparse refusing the arguments
            code = int(exc.code or 0)
        finally:
            get_settings.cache_clear()
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.mark.parametrize("backend", STORE_BACKENDS)
async def test_keys_cli_create_list_revoke(backend: str, pg_url: str, tmp_path: Path, cli: Cli) -> None:
    async with fresh_store_url(backend, pg_url, tmp_path) as store_url:
        code, out, err = await cli(
            store_url, "create", "--name", "bi", "--source", "demo:main.*,other.fact_*", "--rate-limit", "7"
        )
        assert code == 0, err
        secret = out.strip()
        assert secret.startswith("trk_")
        assert "shown once" in err
        code, listed, _ = await cli(store_url, "list")
        assert code == 0
        key_id = listed.split("\t")[0]
        assert key_id.startswith("key_")
        assert secret not in listed
        assert secret[:12] in listed
        assert '{"demo":["main.*","other.fact_*"]}' in listed
        assert "rate=7" in listed

        settings = Settings(
            auth=True, database_url=store_url, key_cache_s=0, demo_warehouse_path=str(tmp_path / "demo.db")
        )
        async with service_client(settings) as client:
            headers = {"Authorization": f"Bearer {secret}"}
            assert (await client.get("/sources", headers=headers)).status_code == 200
            code, _, err = await cli(store_url, "revoke", key_id)
            assert code == 0, err
            # Revoked from another process: this one asks the store again after key_cache_s (0 here).
            assert (await client.get("/sources", headers=headers)).status_code == 401
        code, listed, _ = await cli(store_url, "list")
        assert "revoked" in listed
        assert (await cli(store_url, "revoke", "key_nope"))[0] == 1


async def test_keys_cli_refuses_bad_grants(tmp_path: Path, cli: Cli) -> None:
    store_url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    assert (await cli(store_url, "create", "--name", "x"))[0] == 2  # no source
    assert (await cli(store_url, "create", "--name", "x", "--source", "demo:"))[0] == 2
    assert (await cli(store_url, "create", "--name", "x", "--source", ":a.*"))[0] == 2
    assert (await cli(store_url, "create", "--name", "x", "--admin"))[0] == 0

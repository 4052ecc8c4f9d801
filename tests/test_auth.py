"""Authentication: every endpoint but the probes and the docs wants a valid key; admin ones an admin key.

The endpoints are enumerated from the app's own routes, so a new endpoint cannot slip through
without a key check (or without being added to OPEN on purpose).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from starlette.routing import BaseRoute, Mount, Route

from app.auth.keys import new_secret
from app.harness.service import service_client
from app.main import create_app
from app.settings import Settings
from tests.fixtures.auth import ADMIN_KEY, QUESTION, GrantWorld, GrantWorldBuilder, make_key

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The probes, and the API's documentation with its static assets: open whatever the settings.
OPEN = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
}
STATIC = ("GET", "/static/docs/{path}")
METRICS = ("GET", "/metrics")
ADMIN_ONLY = {
    ("POST", "/sources/{name}/refresh"),
    ("GET", "/cache"),
    ("GET", "/stats"),
    ("POST", "/keys"),
    ("GET", "/keys"),
    ("DELETE", "/keys/{key_id}"),
}


def _walk(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included routers, unflattened
        if included is not None:
            yield from _walk(included.routes, prefix + getattr(route, "include_context").prefix)  # noqa: B009
        elif isinstance(route, Mount):
            yield "GET", prefix + route.path + "/{path}"
        elif isinstance(route, Route):
            yield from ((m, prefix + route.path) for m in route.methods or () if m not in ("HEAD", "OPTIONS"))
        else:
            raise AssertionError(f"a route of a kind this test does not know: {route!r}")


def _endpoints(settings: Settings) -> list[tuple[str, str]]:
    """Every (method, path template) the app answers."""
    return sorted(set(_walk(create_app(settings).routes)))


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "sales", path)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(make_grant_world: GrantWorldBuilder) -> AsyncIterator[GrantWorld]:
    async with make_grant_world(key_cache_s=60) as w:
        yield w


async def test_the_endpoint_list_is_complete() -> None:
    endpoints = set(_endpoints(Settings(auth=True)))
    # The lists below name real endpoints; a renamed one would leave a hole unnoticed.
    assert OPEN | ADMIN_ONLY | {METRICS, STATIC} <= endpoints
    assert ("POST", "/route") in endpoints
    assert ("POST", "/routes/{route_id}/feedback") in endpoints


async def test_every_endpoint_without_a_key_is_401(world: GrantWorld) -> None:
    for method, path in _endpoints(Settings(auth=True)):
        if (method, path) == STATIC:
            continue
        response = await world.client.request(method, _concrete(path), json={})
        if (method, path) in OPEN or (method, path) == METRICS:
            assert response.status_code < 400, (method, path, response.status_code)
            continue
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == 'Bearer realm="tablerouter"'
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/unauthorized")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer trk_" + "A" * 43,  # the right shape, no such key
        "Bearer " + ADMIN_KEY + "x",  # the admin key, one character more
        "Bearer " + ADMIN_KEY[:-1],  # one character less
        "Bearer",  # no token at all
        "Basic " + ADMIN_KEY,  # the right secret, the wrong scheme
        "bearer trk_" + "x" * 5000,  # far too long: not hashed, not looked up
        ADMIN_KEY,  # no scheme
    ],
)
async def test_every_endpoint_with_a_wrong_key_is_401(world: GrantWorld, authorization: str) -> None:
    for method, path in _endpoints(Settings(auth=True)):
        if (method, path) in OPEN or (method, path) in (METRICS, STATIC):
            continue
        response = await world.client.request(
            method, _concrete(path), json={}, headers={"Authorization": authorization}
        )
        assert response.status_code == 401, (method, path, authorization[:20], response.text)
        assert response.headers["www-authenticate"].startswith('Bearer realm="tablerouter"')


async def test_admin_endpoints_refuse_other_keys_with_403(world: GrantWorld) -> None:
    for method, path in sorted(ADMIN_ONLY):
        response = await world.client.request(method, _concrete(path), json={}, headers=world.auth("pub"))
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["type"].endswith("/forbidden")
        admin = await world.client.request(method, _concrete(path), json={}, headers=world.auth("admin"))
        assert admin.status_code not in (401, 403), (method, path, admin.text)


async def test_a_key_works_until_it_is_revoked_then_401_at_once(world: GrantWorld) -> None:
    secret, key_id = await make_key(world.client, "short-lived", grants={"sales": ["*"]})
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await world.client.get("/sources", headers=headers)).status_code == 200
    revoked = await world.client.delete(f"/keys/{key_id}", headers=world.auth("admin"))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    # Cached for 60 s in this world, but a revoke through this process's API forgets it at once.
    after = await world.client.get("/sources", headers=headers)
    assert after.status_code == 401
    assert 'error="invalid_token"' in after.headers["www-authenticate"]
    route = await world.client.post("/route", json={"question": QUESTION, "source": "sales"}, headers=headers)
    assert route.status_code == 401


async def test_key_listing_never_shows_a_secret(world: GrantWorld) -> None:
    listed = await world.client.get("/keys", headers=world.auth("admin"))
    assert listed.status_code == 200
    text = listed.text
    for secret in world.keys.values():
        assert secret not in text
        assert secret[:12] in text  # the display prefix, to recognise it
    assert all(set(k) >= {"id", "prefix", "grants"} and "secret" not in k for k in listed.json()["keys"])


async def test_unknown_key_id_to_revoke_is_404(world: GrantWorld) -> None:
    response = await world.client.delete("/keys/key_nope", headers=world.auth("admin"))
    assert response.status_code == 404


async def test_auth_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TABLEROUTER_AUTH", raising=False)
    assert Settings(_env_file=None).auth is True
    monkeypatch.setenv("TABLEROUTER_AUTH", "off")
    assert Settings(_env_file=None).auth is False


async def test_auth_off_serves_without_a_key_and_says_so_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(auth=False, demo_warehouse_path=str(tmp_path / "demo.db"))
    with caplog.at_level(logging.WARNING, logger="app.main"):
        async with service_client(settings) as client:
            response = await client.post("/route", json={"question": "Which customers placed orders?"})
            assert response.status_code == 200, response.text
            assert (await client.post("/sources/demo/refresh")).status_code == 200
            assert (await client.get("/keys")).status_code == 200
    assert any("TABLEROUTER_AUTH is off" in r.getMessage() for r in caplog.records)


async def test_metrics_can_require_an_admin_key(tmp_path: Path) -> None:
    settings = Settings(
        auth=True, admin_key=ADMIN_KEY, metrics_auth=True, demo_warehouse_path=str(tmp_path / "demo.db")
    )
    async with service_client(settings) as client:
        assert (await client.get("/metrics")).status_code == 401
        ok = await client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert ok.status_code == 200
        assert (await client.get("/healthz")).status_code == 200


async def test_openapi_declares_the_bearer_scheme_on_protected_operations() -> None:
    document = create_app(Settings(auth=True)).openapi()
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if (method.upper(), path) in OPEN:
                assert "security" not in operation, (method, path)
            else:
                assert operation["security"] == [{"apiKey": []}], (method, path)
                assert "401" in operation["responses"], (method, path)


async def test_a_cli_made_key_is_a_bearer_token_shape() -> None:
    # `trk_` + 43 URL-safe characters: 256 random bits, recognisable in logs and secret scanners.
    secrets_made = {new_secret() for _ in range(100)}
    assert len(secrets_made) == 100
    assert all(re.fullmatch(r"trk_[A-Za-z0-9_-]{43}", s) for s in secrets_made)


async def test_no_key_is_needed_for_probes_when_auth_is_on(world: GrantWorld) -> None:
    for path in ("/healthz", "/readyz"):
        response = await world.client.get(path)
        assert response.status_code == 200, path
        # Open to anyone, so it names no source.
        assert "sales" not in response.text
        assert "hr" not in response.text
    unknown = await world.client.get("/no-such-endpoint")
    # An unknown path is 404 for everyone: the router answers before any dependency runs.
    assert unknown.status_code == 404
    assert isinstance(unknown, httpx.Response)


async def test_a_short_admin_key_is_refused_and_an_empty_one_is_none() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        Settings(admin_key="change-me")
    assert Settings(admin_key="").admin_key is None

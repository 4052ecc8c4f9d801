"""Security headers on every kind of response; CORS off by default, on for configured origins only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http import HTTPStatus

import httpx
import pytest
import pytest_asyncio

from app.api.offline_docs import DOCS_CSP
from app.api.security_headers import API_CSP
from app.harness.service import service_client
from tests.fixtures.settings import SettingsBuilder

ALLOWED = "https://bi.example.com"
OTHER = "https://evil.example.net"
BASELINE = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY"}


@pytest.fixture(scope="module")
def header_settings(make_settings: SettingsBuilder) -> SettingsBuilder:
    return make_settings.extend(refresh_interval_s=0, max_body_bytes=2048)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def plain(
    tmp_path_factory: pytest.TempPathFactory, header_settings: SettingsBuilder
) -> AsyncIterator[httpx.AsyncClient]:
    async with service_client(header_settings(tmp=tmp_path_factory.mktemp("plain"))) as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cors(
    tmp_path_factory: pytest.TempPathFactory, header_settings: SettingsBuilder
) -> AsyncIterator[httpx.AsyncClient]:
    settings = header_settings(tmp=tmp_path_factory.mktemp("cors"), cors_origins=[ALLOWED])
    async with service_client(settings) as client:
        yield client


def _assert_secured(response: httpx.Response, csp: str = API_CSP) -> None:
    for name, value in BASELINE.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    assert response.headers.get("content-security-policy") == csp
    assert response.headers.get("cache-control") == "no-store"


QUESTION = {"question": "Which customers placed the most orders?"}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/healthz", None, HTTPStatus.OK),
        ("GET", "/sources", None, HTTPStatus.OK),
        ("POST", "/route", QUESTION, HTTPStatus.OK),
        ("GET", "/openapi.json", None, HTTPStatus.OK),
        ("POST", "/route", {"question": ""}, HTTPStatus.UNPROCESSABLE_ENTITY),
        ("POST", "/route", b"{not json", HTTPStatus.BAD_REQUEST),
        ("POST", "/route", {"question": "x" * 5000}, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
        ("GET", "/sources/nowhere", None, HTTPStatus.NOT_FOUND),
        ("GET", "/no/such/path", None, HTTPStatus.NOT_FOUND),
        ("DELETE", "/route", None, HTTPStatus.METHOD_NOT_ALLOWED),
    ],
)
async def test_every_response_carries_the_security_headers(
    plain: httpx.AsyncClient, method: str, path: str, body: object, status: HTTPStatus
) -> None:
    if isinstance(body, bytes):
        headers = {"content-type": "application/json"}
        response = await plain.request(method, path, content=body, headers=headers)
    else:
        response = await plain.request(method, path, json=body)
    assert response.status_code == status
    _assert_secured(response)


@pytest.mark.asyncio(loop_scope="module")
async def test_docs_keep_their_own_policy_and_static_assets_may_be_cached(plain: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        response = await plain.get(page)
        assert response.status_code == HTTPStatus.OK
        _assert_secured(response, DOCS_CSP)
        assert "frame-ancestors 'none'" in DOCS_CSP
    asset = await plain.get("/static/docs/swagger-ui.css")
    assert asset.status_code == HTTPStatus.OK
    assert asset.headers["x-content-type-options"] == "nosniff"
    assert "cache-control" not in asset.headers


@pytest.mark.asyncio(loop_scope="module")
async def test_cors_is_off_by_default(plain: httpx.AsyncClient) -> None:
    preflight = await plain.options(
        "/route", headers={"origin": ALLOWED, "access-control-request-method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    _assert_secured(preflight)
    simple = await plain.get("/sources", headers={"origin": ALLOWED})
    assert simple.status_code == HTTPStatus.OK
    assert "access-control-allow-origin" not in simple.headers


@pytest.mark.asyncio(loop_scope="module")
async def test_cors_preflight_from_an_allowed_origin(cors: httpx.AsyncClient) -> None:
    preflight = await cors.options(
        "/route",
        headers={
            "origin": ALLOWED,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, authorization",
        },
    )
    assert preflight.status_code == HTTPStatus.OK
    assert preflight.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    _assert_secured(preflight)
    answer = await cors.post("/route", json=QUESTION, headers={"origin": ALLOWED})
    assert answer.status_code == HTTPStatus.OK
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    assert "retry-after" in answer.headers["access-control-expose-headers"].lower()


@pytest.mark.asyncio(loop_scope="module")
async def test_cors_refuses_another_origin(cors: httpx.AsyncClient) -> None:
    preflight = await cors.options(
        "/route", headers={"origin": OTHER, "access-control-request-method": "POST"}
    )
    assert preflight.status_code == HTTPStatus.BAD_REQUEST
    assert "access-control-allow-origin" not in preflight.headers
    _assert_secured(preflight)
    answer = await cors.post("/route", json=QUESTION, headers={"origin": OTHER})
    assert "access-control-allow-origin" not in answer.headers
    # A method outside the allowed ones is refused in the preflight even for the allowed origin.
    delete = await cors.options(
        "/route", headers={"origin": ALLOWED, "access-control-request-method": "DELETE"}
    )
    assert delete.status_code == HTTPStatus.BAD_REQUEST

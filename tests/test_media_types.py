"""Request bodies must be JSON: a missing or other Content-Type is 415, a charset parameter is fine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http import HTTPStatus

import httpx
import pytest
import pytest_asyncio

from app.harness.service import service_client
from tests.fixtures.settings import SettingsBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Every endpoint that takes a body, with a body it accepts.
BODY_ENDPOINTS = [
    ("/route", b'{"question": "Which customers placed the most orders?"}'),
    ("/route/batch", b'{"requests": [{"question": "Which customers placed the most orders?"}]}'),
    ("/keys", b'{"name": "media-types", "grants": {"demo": ["*"]}}'),
    ("/routes/no-such-route/feedback", b'{"used_tables": ["orders"]}'),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(
    tmp_path_factory: pytest.TempPathFactory, make_settings: SettingsBuilder
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp=tmp_path_factory.mktemp("media"), refresh_interval_s=0)
    async with service_client(settings) as c:
        yield c


@pytest.mark.parametrize(("path", "body"), BODY_ENDPOINTS)
async def test_a_body_without_content_type_is_415(client: httpx.AsyncClient, path: str, body: bytes) -> None:
    response = await client.post(path, content=body)
    assert "content-type" not in response.request.headers  # httpx sends raw content as is
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/unsupported-media-type")
    assert "no Content-Type" in problem["detail"]


@pytest.mark.parametrize(("path", "body"), BODY_ENDPOINTS)
async def test_a_body_of_another_media_type_is_415(client: httpx.AsyncClient, path: str, body: bytes) -> None:
    response = await client.post(path, content=body, headers={"content-type": "text/plain"})
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert "text/plain" in response.json()["detail"]


@pytest.mark.parametrize(("path", "body"), BODY_ENDPOINTS)
async def test_json_with_a_charset_is_taken(client: httpx.AsyncClient, path: str, body: bytes) -> None:
    headers = {"content-type": "application/json; charset=utf-8"}
    response = await client.post(path, content=body, headers=headers)
    # The body was read: a success, or (feedback on a route that does not exist) a 404.
    assert response.status_code in (HTTPStatus.OK, HTTPStatus.CREATED, HTTPStatus.NOT_FOUND), response.text
    if response.status_code == HTTPStatus.NOT_FOUND:
        assert path.endswith("/feedback")


async def test_a_bodyless_post_without_content_type_is_not_a_media_problem(client: httpx.AsyncClient) -> None:
    # POST /sources/{name}/refresh takes no body: no Content-Type is right for it.
    response = await client.post("/sources/no-such-source/refresh")
    assert response.status_code != HTTPStatus.UNSUPPORTED_MEDIA_TYPE

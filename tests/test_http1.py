"""The judge's HTTP/1.1 client over real sockets: the simulator, and a bare server for framings
and connection endings the simulator does not produce."""

from __future__ import annotations

import asyncio
import base64
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest

from app.harness.forward_proxy import running_forward_proxy
from app.llm.failures import classify
from app.llm.http1 import HTTPConnectionError, OriginPool, Proxy
from app.simulator.launcher import free_port
from app.simulator.service import SimulatorConfig, running_simulator

HEADERS = {"content-type": "application/json"}
PROMPT = orjson.dumps({"messages": [{"role": "user", "content": "hello"}]})

Responder = Callable[[bytes], bytes]


@asynccontextmanager
async def bare_server(
    respond: Responder, *, close_after: bool, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """A server that answers each request's bytes with ``respond(request)``, closing the
    connection after each answer if ``close_after`` (over TLS with ``tls``); yields its URL and
    the connections it took."""
    accepted: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                writer.write(respond(body))
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}/v1/chat/completions", accepted
    finally:
        server.close()
        await server.wait_closed()


async def test_calls_reuse_one_keep_alive_connection() -> None:
    async with running_simulator(SimulatorConfig(port=0)) as url:
        pool = OriginPool(f"{url}/v1/chat/completions", HEADERS, max_idle=4)
        try:
            replies = [await pool.post(PROMPT) for _ in range(5)]
        finally:
            await pool.aclose()
    assert [r.status for r in replies] == [200] * 5
    assert all(orjson.loads(r.body)["object"] == "chat.completion" for r in replies)
    assert pool.connections_made == 1


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    # Content-Length framing, no "Connection: close": the client only learns at the next send.
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with bare_server(lambda _: reply, close_after=True) as (url, accepted):
        pool = OriginPool(url, HEADERS, max_idle=4)
        try:
            first = await pool.post(PROMPT)
            await asyncio.sleep(0.05)  # the server's close reaches the idle connection
            second = await pool.post(PROMPT)
        finally:
            await pool.aclose()
    assert (first.body, second.body) == (b"ok", b"ok")
    assert len(accepted) == 2


async def test_chunked_and_until_close_bodies_with_retry_after() -> None:
    chunked = (
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1.5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nslow \r\n5\r\ndown!\r\n0\r\n\r\n"
    )
    until_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"
    async with bare_server(lambda _: chunked, close_after=False) as (url, _):
        pool = OriginPool(url, HEADERS, max_idle=4)
        try:
            limited = await pool.post(PROMPT)
            again = await pool.post(PROMPT)
        finally:
            await pool.aclose()
    assert (limited.status, limited.retry_after, limited.body) == (429, "1.5", b"slow down!")
    assert again.body == b"slow down!"
    assert pool.connections_made == 1
    async with bare_server(lambda _: until_close, close_after=True) as (url, _):
        pool = OriginPool(url, HEADERS, max_idle=4)
        try:
            whole = await pool.post(PROMPT)
        finally:
            await pool.aclose()
    assert (whole.status, whole.body) == (200, b"all of it")


async def test_a_cancelled_call_closes_its_connection() -> None:
    async with running_simulator(SimulatorConfig(port=0, latency_ms=10_000)) as url:
        pool = OriginPool(f"{url}/v1/chat/completions", HEADERS, max_idle=4)
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await pool.post(PROMPT)
            assert not pool._idle  # never handed to the next call
        finally:
            await pool.aclose()


async def test_garbage_and_refused_connections_fail_as_retryable_transport_errors() -> None:
    async with bare_server(lambda _: b"SMTP ready\r\n\r\n", close_after=True) as (url, _):
        pool = OriginPool(url, HEADERS, max_idle=4)
        try:
            with pytest.raises(HTTPConnectionError) as garbage:
                await pool.post(PROMPT)
        finally:
            await pool.aclose()
    pool = OriginPool(f"http://127.0.0.1:{free_port()}/v1", HEADERS, max_idle=4)
    with pytest.raises(HTTPConnectionError) as refused:
        await pool.post(PROMPT)
    for error in (garbage.value, refused.value):
        failure = classify(error, 5.0)
        assert failure.retryable
        assert failure.backend_fault


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by the openssl command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command for a certificate")
async def test_https_verifies_the_server_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hosted providers speak HTTPS: the pool verifies the certificate against the trust store
    (SSL_CERT_FILE names an extra one, as behind a company's TLS proxy) and refuses a stranger."""
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    content = orjson.dumps({"choices": [{"message": {"content": "ok"}}]})
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(content), content)
    async with bare_server(lambda _: reply, close_after=False, tls=server_tls) as (url, _):
        untrusted = OriginPool(url, HEADERS, max_idle=4)
        try:
            with pytest.raises(HTTPConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusted.post(PROMPT)
        finally:
            await untrusted.aclose()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        trusted = OriginPool(url, HEADERS, max_idle=4)
        try:
            answers = [await trusted.post(PROMPT) for _ in range(2)]
        finally:
            await trusted.aclose()
    assert [a.status for a in answers] == [200, 200]
    assert orjson.loads(answers[1].body) == {"choices": [{"message": {"content": "ok"}}]}
    assert trusted.connections_made == 1  # kept alive over TLS too


def test_proxy_urls_and_their_credentials() -> None:
    assert Proxy.from_url("proxy.corp:3128") == Proxy("proxy.corp", 3128)
    assert Proxy.from_url("http://proxy.corp") == Proxy("proxy.corp", 80)
    with_user = Proxy.from_url("http://svc%40corp:p%3Ass@proxy.corp:3128")
    assert with_user.authorization == "Basic " + base64.b64encode(b"svc@corp:p:ss").decode()
    with pytest.raises(ValueError, match="only http:// proxies") as raised:
        Proxy.from_url("socks5://user:hunter2@proxy.corp:1080")
    assert "hunter2" not in str(raised.value)


async def test_plain_http_goes_through_the_proxy_on_kept_alive_connections() -> None:
    content = orjson.dumps({"choices": [{"message": {"content": "ok"}}]})
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(content), content)
    async with (
        bare_server(lambda _: reply, close_after=False) as (url, accepted),
        running_forward_proxy() as (proxy_url, proxy),
    ):
        pool = OriginPool(url, HEADERS, max_idle=4, proxy=Proxy.from_url(proxy_url.replace("//", "//u:pw@")))
        try:
            answers = [await pool.post(PROMPT) for _ in range(3)]
        finally:
            await pool.aclose()
    assert [a.body for a in answers] == [content] * 3
    assert (proxy.requests, proxy.connections, len(accepted)) == (3, 1, 1)
    assert proxy.authorization == "Basic " + base64.b64encode(b"u:pw").decode()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command for a certificate")
async def test_https_goes_through_a_connect_tunnel_and_verifies_the_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with (
        bare_server(lambda _: reply, close_after=False, tls=server_tls) as (url, _),
        running_forward_proxy() as (proxy_url, proxy),
    ):
        pool = OriginPool(url, HEADERS, max_idle=4, proxy=Proxy.from_url(proxy_url))
        try:
            answers = [await pool.post(PROMPT) for _ in range(2)]
        finally:
            await pool.aclose()
        monkeypatch.delenv("SSL_CERT_FILE")
        stranger = OriginPool(url, HEADERS, max_idle=4, proxy=Proxy.from_url(proxy_url))
        try:
            with pytest.raises(HTTPConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await stranger.post(PROMPT)
        finally:
            await stranger.aclose()
    assert [a.body for a in answers] == [b"ok", b"ok"]
    assert pool.connections_made == 1  # the tunnel is kept alive
    assert proxy.tunnels == 2


async def test_a_refused_tunnel_is_a_retryable_connection_failure() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = OriginPool("https://127.0.0.1:9/v1", HEADERS, max_idle=4, proxy=Proxy("127.0.0.1", port))
    try:
        with pytest.raises(HTTPConnectionError, match=r"refused a tunnel.*HTTP 403") as refused:
            await pool.post(PROMPT)
    finally:
        await pool.aclose()
        server.close()
        await server.wait_closed()
    failure = classify(refused.value, 5.0)
    assert (failure.retryable, failure.backend_fault) == (True, True)

"""A minimal HTTP forward proxy on loopback, standing in for a company's egress proxy.

The LM client sends its calls through a proxy when the environment names one; tests and
benchmarks need a real one to exercise that path. Plain-HTTP requests arrive in absolute form
(``POST http://host:port/path HTTP/1.1``) and go to the origin in origin form over one
upstream connection per client connection (so a client connection talks to one origin, as
the LM client's do); ``CONNECT host:port`` opens a tunnel (HTTPS). Counts connections and
requests and tunnels. Not a general proxy: no chunked request bodies, no authentication.

Run in its own process: ``python -m app.harness.forward_proxy --port 8899``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["ForwardProxy", "running_forward_proxy"]

_HEAD_END = b"\r\n\r\n"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until EOF, then close ``writer``."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def _header(head: bytes, wanted: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == wanted:
            return value.strip()
    return None


@dataclass
class ForwardProxy:
    """The proxy's handler and its counters."""

    connections: int = 0
    requests: int = 0  # CONNECTs included
    tunnels: int = 0
    authorization: str | None = None  # the last Proxy-Authorization header seen

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection."""
        self.connections += 1
        upstream: asyncio.StreamWriter | None = None
        replies: asyncio.Task[None] | None = None
        try:
            while head := await reader.readuntil(_HEAD_END):
                line, _, rest = head.partition(b"\r\n")
                method, target, version = line.split(b" ", 2)
                self.requests += 1
                if (authorization := _header(head, b"proxy-authorization")) is not None:
                    self.authorization = authorization.decode("latin-1")
                if method == b"CONNECT":
                    self.tunnels += 1
                    host, _, port = target.decode("latin-1").rpartition(":")
                    up_reader, upstream = await asyncio.open_connection(host, int(port))
                    writer.write(b"HTTP/1.1 200 Connection established" + _HEAD_END)
                    await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
                    return
                url = urlsplit(target.decode("latin-1"))
                if upstream is None:
                    up_reader, upstream = await asyncio.open_connection(url.hostname, url.port or 80)
                    replies = asyncio.create_task(_pipe(up_reader, writer))
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
                body = await reader.readexactly(int(_header(head, b"content-length") or 0))
                upstream.write(b" ".join((method, path.encode("latin-1"), version)) + b"\r\n" + rest + body)
                await upstream.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass  # the client or the origin closed the connection
        finally:
            if upstream is not None:
                upstream.close()
            if replies is not None:
                await asyncio.gather(replies, return_exceptions=True)
            writer.close()


@contextlib.asynccontextmanager
async def running_forward_proxy() -> AsyncIterator[tuple[str, ForwardProxy]]:
    """A proxy on a free loopback port of this event loop: its URL and its counters."""
    proxy = ForwardProxy()
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", proxy
    finally:
        server.close()
        await server.wait_closed()


async def _serve(port: int) -> None:
    proxy = ForwardProxy()
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", port)
    print(f"forward proxy on http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Serve the proxy until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8899)
    args = parser.parse_args()
    asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()

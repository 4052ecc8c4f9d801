"""uvicorn's HTTP/1.1 protocols with a deadline on each request head, and a notice of shutdown.

uvicorn closes a kept-alive connection that stays idle after a response (``timeout_keep_alive``)
and caps the size of a request head (``h11_max_incomplete_event_size``), but it waits forever
for a head that never completes: a client that connects and sends nothing, or one header byte
a minute, holds its socket and file descriptor as long as it likes. These subclasses give each
request head ``header_timeout_s`` seconds - from the connection's start for the first request,
from its first byte for the next ones on a kept-alive connection - then answer 408 and close.
A timer per connection, armed only while a head is awaited: the request path pays nothing.

The server asks every connection to shut down when it stops (SIGTERM); the first to be asked
tells the app (``begin_drain``): its routes in flight then answer with what finished before the
graceful-shutdown timeout, instead of being cancelled at it with no answer. It is done here, in
the protocol, because that is the one part of uvicorn every worker process builds from the
configuration (a ``Server`` subclass would not reach ``--workers`` processes).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "HeadTimeoutH11Protocol",
    "HeadTimeoutHttpToolsProtocol",
    "HeadTimer",
    "ServingConfig",
    "begin_drain",
    "protocol_class",
]
# The ASGI wrappers uvicorn may put around the app (proxy headers, logging) before reaching it.
MAX_WRAPPERS = 8

TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class ServingConfig(uvicorn.Config):
    """uvicorn's configuration, plus the time a client has to send a request head (None: forever)."""

    def __init__(self, app: Any, *, header_timeout_s: float | None = None, **options: Any) -> None:
        super().__init__(app, **options)
        self.header_timeout_s = header_timeout_s


class _Connection(Protocol):
    cycle: Any  # uvicorn's RequestResponseCycle of the request being served, once its head is in
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop


class HeadTimer:
    """The deadline of the request head a connection is waiting for."""

    def __init__(self, connection: _Connection, timeout_s: float | None) -> None:
        self.connection = connection
        self.timeout_s = timeout_s
        self._handle: asyncio.TimerHandle | None = None
        self._cycle: Any = None  # the cycle before the awaited head: a new one means it arrived

    def start(self) -> None:
        """Wait for a head from now on."""
        if self.timeout_s is not None and self._handle is None:
            self._cycle = self.connection.cycle
            self._handle = self.connection.loop.call_later(self.timeout_s, self._expired)

    def before_data(self) -> None:
        """Bytes arrive: the first of a new request starts its head's deadline."""
        cycle = self.connection.cycle
        if cycle is None or cycle.response_complete:
            self.start()

    def after_data(self) -> None:
        """The bytes were parsed: a new request cycle means its head is complete."""
        if self._handle is not None and self.connection.cycle is not self._cycle:
            self.stop()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _expired(self) -> None:
        self._handle = None
        transport = self.connection.transport
        if not transport.is_closing():
            transport.write(TIMED_OUT)
            transport.close()


def _timeout_of(config: uvicorn.Config) -> float | None:
    return config.header_timeout_s if isinstance(config, ServingConfig) else None


def begin_drain(app: Any, within_s: float | None) -> None:
    """Tell ``app`` (under uvicorn's wrappers) that the server stops within ``within_s`` seconds.

    The app takes the notice through ``app.state.route_cutoff.begin``; an app without one, or a
    server that waits for its requests however long they take (None), is left alone.
    """
    for _ in range(MAX_WRAPPERS if within_s is not None else 0):
        cutoff = getattr(getattr(app, "state", None), "route_cutoff", None)
        if cutoff is not None:
            cutoff.begin(within_s)
            return
        app = getattr(app, "app", None)
        if app is None:
            return


def protocol_class(name: str) -> type[asyncio.Protocol]:
    """The protocol class for ``--http`` ``name`` ("auto" is httptools, which is installed)."""
    return HeadTimeoutH11Protocol if name == "h11" else HeadTimeoutHttpToolsProtocol


class HeadTimeoutH11Protocol(H11Protocol):
    """h11's protocol with a request-head deadline."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.head_timer = HeadTimer(self, _timeout_of(config))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_timer.start()

    def data_received(self, data: bytes) -> None:
        self.head_timer.before_data()
        super().data_received(data)
        self.head_timer.after_data()

    def connection_lost(self, exc: Exception | None) -> None:
        self.head_timer.stop()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        begin_drain(self.app, self.config.timeout_graceful_shutdown)
        super().shutdown()


class HeadTimeoutHttpToolsProtocol(HttpToolsProtocol):
    """httptools' protocol with a request-head deadline."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.head_timer = HeadTimer(self, _timeout_of(config))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_timer.start()

    def data_received(self, data: bytes) -> None:
        self.head_timer.before_data()
        super().data_received(data)
        self.head_timer.after_data()

    def connection_lost(self, exc: Exception | None) -> None:
        self.head_timer.stop()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        begin_drain(self.app, self.config.timeout_graceful_shutdown)
        super().shutdown()

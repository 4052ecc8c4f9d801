"""An ASGI middleware that answers 408 problem+json when a request body does not arrive in time.

uvicorn has no body read timeout: a client that sends its head and then nothing (or a byte now
and then) keeps a request - and the handler reading its body - waiting for ever. Here the whole
body must arrive within ``timeout_s`` of the first read; past it the handler's read fails, the
client gets a 408 problem with ``Connection: close``, and the server closes the connection.
"""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import ProblemType, problem_response

__all__ = ["BodyTimeoutMiddleware"]


class _BodyTimedOutError(Exception):
    pass


class BodyTimeoutMiddleware:
    """Refuse requests whose body takes longer than ``timeout_s`` to arrive."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body did not arrive within {self.timeout_s:g} s"
        response = problem_response(
            HTTPStatus.REQUEST_TIMEOUT, ProblemType.REQUEST_TIMEOUT, detail, scope.get("path")
        )
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        expires_at: float | None = None
        body_done = timed_out = refused = False

        async def timed_receive() -> Message:
            nonlocal expires_at, body_done, timed_out
            if body_done:  # after the body, a read waits for the disconnect: no deadline
                return await receive()
            expires_at = expires_at or time.monotonic() + self.timeout_s
            try:
                async with asyncio.timeout(max(0.0, expires_at - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise _BodyTimedOutError from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal refused
            # The framework may turn the failed read into its own error; the client gets the 408.
            if not timed_out:
                await send(message)
            elif not refused:
                refused = True
                await self._refuse(scope, receive, send)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except _BodyTimedOutError:
            if not refused:
                refused = True
                await self._refuse(scope, receive, send)

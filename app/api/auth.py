"""Who asks: the bearer-token dependencies every protected router declares.

``authenticated`` turns ``Authorization: Bearer <key>`` into a ``Principal`` (401 otherwise);
``admin_only`` also requires an admin key (403 otherwise). With TABLEROUTER_AUTH off every
request is the anonymous principal, which sees everything. The probes and the documentation
declare neither and stay open.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.problems import (
    ForbiddenError,
    RateLimitedError,
    StoreUnavailableError,
    TokenBudgetError,
    UnauthorizedError,
    problem_responses,
)
from app.api.state import AppState, get_state
from app.auth.authenticator import KeyNotCheckableError
from app.auth.key_limits import KeyLimitError, until_midnight_s
from app.auth.principal import ANONYMOUS, Principal
from app.routing.token_hold import BudgetExhaustedError

__all__ = [
    "ADMIN_RESPONSES",
    "KEY_RESPONSES",
    "admin_only",
    "admit",
    "admit_routes",
    "authenticated",
    "bearer",
    "budget_refusal",
    "principal_of",
]

REALM = 'Bearer realm="tablerouter"'

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    bearerFormat="trk_...",
    description="An API key (`tablerouter keys create`), as `Authorization: Bearer trk_...`.",
)

# What every protected operation may answer, and admin-only ones on top (no 422: not a body's).
KEY_RESPONSES: dict[int | str, dict[str, Any]] = problem_responses(UnauthorizedError, validation=False)
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = problem_responses(
    UnauthorizedError, ForbiddenError, validation=False
)


async def authenticated(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> Principal:
    """The principal of the request's API key; 401 without a valid one."""
    return await principal_of(get_state(request), credentials.credentials if credentials else None)


async def principal_of(state: AppState, token: str | None) -> Principal:
    """The principal of a bearer ``token`` (None: none sent); 401 without a valid one.

    The one check behind every way in: the REST API and the MCP server.
    """
    if not state.settings.auth:
        return ANONYMOUS
    if token is None:
        raise UnauthorizedError(
            "an API key is required: send Authorization: Bearer <key>", headers={"WWW-Authenticate": REALM}
        )
    try:
        principal = await state.authenticator.principal(token)
    except KeyNotCheckableError as exc:
        # Keys verified before the outage still pass (the authenticator's cache); this one was not.
        raise StoreUnavailableError(
            "the service's store is unavailable and this key was not verified before; try again",
            retry_after=5,
        ) from exc
    if principal is None:
        raise UnauthorizedError(
            "the API key is not valid (unknown or revoked)",
            headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )
    return principal


async def admin_only(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    """The principal of an admin key; 403 for any other key."""
    if not principal.admin:
        raise ForbiddenError("this needs an admin key")
    return principal


async def admit(request: Request, principal: Principal, routes: int = 1) -> None:
    """Count ``routes`` starting for ``principal``; 429 with Retry-After when over a limit."""
    await admit_routes(get_state(request), principal, routes)


async def admit_routes(state: AppState, principal: Principal, routes: int = 1) -> None:
    """``admit`` without a request: the MCP server's routes count against the same limits."""
    try:
        await state.limits.admit(principal, routes)
    except KeyLimitError as exc:
        error = RateLimitedError if exc.kind == "rate" else TokenBudgetError
        raise error(str(exc), retry_after=exc.retry_after_s) from exc


def budget_refusal(exc: BudgetExhaustedError, route_deadline_ms: int) -> TokenBudgetError:
    """The 429 of a route its key's day cannot pay for.

    Retry-After: while other routes of the key hold part of the day, they settle within a
    route's deadline and may give some back; otherwise the day is spent until 00:00 UTC.
    """
    if exc.held.held_by_others > 0:
        return TokenBudgetError(str(exc), retry_after=max(1, math.ceil(route_deadline_ms / 1000)))
    return TokenBudgetError(str(exc), retry_after=until_midnight_s())

"""The problem a request gets when its source cannot be routed over yet (or at all)."""

from __future__ import annotations

import math

from app.api.problems import AppError, NotReadyError, SourceEmptyError
from app.auth.principal import Principal
from app.sources.registry import SourceState, SourceStatus

# What a key that does not see every table is told instead of the refresh error (which may name any).
REFRESH_FAILED = "the last refresh failed"
# A source still loading is worth asking again soon.
LOADING_RETRY_AFTER_S = 1


def shown_error(source: SourceState, principal: Principal) -> str | None:
    """The source's last error as ``principal`` may read it."""
    if source.last_error is None:
        return None
    # The refresh error may name any table of the source: only an admin key reads it.
    return source.last_error if principal.admin else REFRESH_FAILED


def unroutable(source: SourceState, principal: Principal) -> AppError | None:
    """Why a route over ``source`` cannot run now (409 empty, 503 with Retry-After), or None."""
    status = source.status
    if status is SourceStatus.READY:
        return None
    if status is SourceStatus.EMPTY:
        return SourceEmptyError(
            f"source {source.name!r} has no table in its schemas; "
            "check the source's schemas and exclude_schemas settings"
        )
    retry_in = source.retry_in_s()
    retry_after = LOADING_RETRY_AFTER_S if retry_in is None else max(1, math.ceil(retry_in))
    why = shown_error(source, principal) or "loading"
    return NotReadyError(
        f"source {source.name!r} has no catalog snapshot yet: {why}",
        retry_after=retry_after,
        error_kind=source.error_kind.value if source.error_kind else None,
    )

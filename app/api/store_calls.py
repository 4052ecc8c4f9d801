"""The store being down, on an endpoint that needs it: a 503 problem with Retry-After, never a 500."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from app.api.problems import StoreUnavailableError
from app.store.health import STORE_ERRORS

__all__ = ["store_call"]

log = logging.getLogger(__name__)


@contextmanager
def store_call() -> Iterator[None]:
    """Turn the store being down into a 503 problem (with Retry-After), not a 500."""
    try:
        yield
    except STORE_ERRORS as exc:
        log.warning("store unavailable: %r", exc)
        raise StoreUnavailableError("the service's store is unavailable; try again", retry_after=5) from exc

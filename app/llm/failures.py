"""What an LM call's failure means: retry or not, after how long, and is it the backend's fault.

DSPy 3.4 raises (its exceptions, exported by ``dspy``), as measured against the simulator's faults:

- 429: ``LMRateLimitError`` with ``retry_after`` (seconds) from ``Retry-After``;
- 5xx: ``LMServerError``;
- connection refused or reset, or no bytes within the transport's read timeout: ``LMTransportError``;
- a reply that does not parse: ``AdapterParseError`` (the backend answered: not its fault);
- our own ``asyncio.timeout`` around the call: ``TimeoutError``.

Only the backend's faults count towards the circuit breaker; a request the provider rejects
as invalid (context window, bad parameter), or any error that is not one of DSPy's LM errors,
fails that chunk only and is not retried.
"""

from __future__ import annotations

import math
from http import HTTPStatus

from dspy import (
    AdapterParseError,
    LMError,
    LMInvalidRequestError,
    LMRateLimitError,
    LMServerError,
    LMTimeoutError,
    LMTransportError,
)

from app.llm.breaker import BreakerOpenError
from app.llm.chat_lm import LMHTTPError, LMReplyError
from app.llm.http1 import HTTPConnectionError
from app.llm.retry_policy import Failure, backoff_s

__all__ = ["Failure", "backoff_s", "classify"]

_TRANSIENT = (LMRateLimitError, LMServerError, LMTransportError, LMTimeoutError)


def _retry_after(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def classify(exc: BaseException, timeout_s: float) -> Failure:
    """The meaning of ``exc`` raised by one attempt that had ``timeout_s`` seconds."""
    if isinstance(exc, AdapterParseError):
        return Failure("unparseable reply", retryable=True, backend_fault=False, parse=True)
    if isinstance(exc, BreakerOpenError):
        return Failure(str(exc), retryable=False, backend_fault=False)
    if isinstance(exc, TimeoutError):
        return Failure(f"timed out after {timeout_s:.3g} s", retryable=True, backend_fault=True)
    if isinstance(exc, (LMHTTPError, LMReplyError, HTTPConnectionError)):
        return _chat_failure(exc)
    rate_limited = isinstance(exc, LMRateLimitError)
    return Failure(
        "rate limited (429)" if rate_limited else f"{type(exc).__name__}: {str(exc)[:200]}",
        retryable=isinstance(exc, _TRANSIENT),
        # A request the provider rejects as invalid, or a bug of ours outside DSPy's LM errors,
        # says nothing about the backend's health; authentication, billing or an engine bug does.
        backend_fault=isinstance(exc, LMError) and not isinstance(exc, LMInvalidRequestError),
        retry_after=_retry_after(exc),
    )


def _chat_failure(exc: LMHTTPError | LMReplyError | HTTPConnectionError) -> Failure:
    """What the lean chat-completions LM's errors mean, as DSPy's equivalents would."""
    if isinstance(exc, LMReplyError):
        # A body that is not a chat completion is an unparseable reply, like a bad verdict list.
        return Failure("unparseable reply", retryable=True, backend_fault=False, parse=True)
    if isinstance(exc, HTTPConnectionError):
        return Failure(f"{type(exc).__name__}: {str(exc)[:200]}", retryable=True, backend_fault=True)
    status = exc.status
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return Failure("rate limited (429)", retryable=True, backend_fault=True, retry_after=exc.retry_after)
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return Failure(str(exc)[:200], retryable=True, backend_fault=True, retry_after=exc.retry_after)
    # Bad credentials or billing say the backend is unusable; another 4xx is our request's fault.
    auth = status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.PAYMENT_REQUIRED, HTTPStatus.FORBIDDEN)
    return Failure(str(exc)[:200], retryable=False, backend_fault=auth)

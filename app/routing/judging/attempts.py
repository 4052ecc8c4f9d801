"""The one retry layer: a chunk's LM calls, each through the breaker and the limiter, retried and hedged.

Retries are ours alone (DSPy's are off): 429, 5xx, connection errors and timeouts are retried
with jittered exponential backoff, never sooner than the provider's Retry-After, only while
the route's deadline leaves time for another call, and only within the backend's retry
budget; a reply that does not parse is retried once. With the route's coverage, a failed call
is not retried when other chunks judge all its tables. A slow call may be hedged
(``app.routing.judging.hedging``). Every call passes the backend's circuit breaker and its
shared limiter; a cancelled call frees its slot.

What one call asks is the caller's (``ask``, given the call's DSPy config); this module only
decides when to call, and what a failure means.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from dspy import AdapterParseError

from app.llm.backend import LMBackend
from app.llm.failures import Failure, classify
from app.observability.metrics import HEDGES, LM_CALLS, LM_RETRIES, LM_RETRIES_SKIPPED
from app.routing.deadline import Deadline
from app.routing.judging.coverage import Coverage
from app.routing.judging.hedging import hedged
from app.routing.preparation.chunks import Chunk

__all__ = ["PARSE_RETRIES", "Ask", "AttemptCounts", "ChunkAttempts"]

log = logging.getLogger(__name__)
PARSE_RETRIES = 1
# The metric child every answered call updates, looked up once (labels() takes a lock).
_CALLS_OK = LM_CALLS.labels("ok")

T = TypeVar("T")
Ask = Callable[[dict[str, Any]], Awaitable[T]]


class AttemptCounts(Protocol):
    """What a chunk's attempts record as they go (``ChunkOutcome`` is one)."""

    lm_calls: int
    retries: int
    hedges: int
    failed: bool
    covered: bool
    error: str | None


@dataclass(slots=True)
class ChunkAttempts:
    """One chunk's calls to one backend, each within min(``timeout``, time left), counted into ``counts``."""

    backend: LMBackend
    timeout: float
    chunk: Chunk
    deadline: Deadline
    counts: AttemptCounts
    parse_retries: int = 0

    async def run(self, ask: Ask[T], coverage: Coverage | None = None) -> T | None:
        """``ask``'s answer, retried and hedged as the backend allows; None when the chunk failed.

        The counts are filled as calls go, so a cancelled chunk still counts. With ``coverage``
        (the route's other chunks), a failed call is retried only when some of the chunk's
        tables cannot be judged by another chunk.
        """
        reliability = self.backend.reliability
        counts = self.counts
        while True:
            timeout = self.deadline.call_timeout(self.timeout)
            attempt = functools.partial(self._attempt, ask, config=self._fresh())
            try:
                return await hedged(
                    attempt,
                    reliability.hedge_delay_s(),
                    lambda: reliability.may_hedge(self.backend.limiter),
                    self._on_hedge,
                )
            except Exception as exc:  # any LM or transport failure fails this attempt only
                failure = self._classify(exc, timeout)
            if failure.retryable and coverage is not None and not await coverage.needed(self.chunk.index):
                counts.failed = counts.covered = True
                counts.error = f"{failure.reason} (not retried: other chunks judged all its tables)"
                LM_RETRIES_SKIPPED.inc()
                log.debug("chunk %d failed: %s", self.chunk.index, counts.error)
                return None
            delay = reliability.retry_delay_s(counts.retries, failure)
            refusal = self._retry_refusal(failure, delay)
            if refusal:
                counts.failed, counts.error = True, f"{failure.reason} ({refusal})"
                log.debug("chunk %d failed: %s", self.chunk.index, counts.error)
                return None
            counts.retries += 1
            LM_RETRIES.labels("unparseable" if failure.parse else "transient").inc()
            self.parse_retries += failure.parse
            await asyncio.sleep(delay)

    def _on_hedge(self) -> None:
        self.counts.hedges += 1
        HEDGES.labels("sent").inc()

    def _fresh(self) -> dict[str, Any]:
        """Call config that keeps a parse retry from DSPy's cache of the failed reply.

        The service's LM runs with the cache off, so every call is fresh already and no
        rollout_id is sent (DSPy warns about one at temperature 0).
        """
        retry = self.parse_retries
        return {"rollout_id": retry} if retry and getattr(self.backend.lm, "cache", False) else {}

    async def _attempt(self, ask: Ask[T], started: asyncio.Event | None, config: dict[str, Any]) -> T:
        """One LM call: through the breaker and the limiter, within min(timeout, time left)."""
        reliability = self.backend.reliability
        probe = await reliability.breaker.admit()
        answered: bool | None = None  # None: no verdict on the backend's health
        failure = ""
        try:
            # The chunk's tokens are what a tokens-per-minute limit books for this call.
            async with self.backend.limiter.slot(self.chunk.tokens):
                if started is not None:
                    started.set()
                timeout = self.deadline.call_timeout(self.timeout)
                if timeout <= 0:
                    raise TimeoutError  # the deadline passed while this call queued
                self.counts.lm_calls += 1
                reliability.note_call()
                begun = time.monotonic()
                try:
                    async with asyncio.timeout(timeout):
                        answer = await ask(config)
                except AdapterParseError:
                    answered = True
                    LM_CALLS.labels("unparseable").inc()
                    raise
                except TimeoutError:
                    LM_CALLS.labels("timeout").inc()
                    # Cut by the route's deadline rather than the call timeout: not the backend's fault.
                    answered = False if timeout >= self.timeout else None
                    failure = f"timed out after {timeout:.3g} s"
                    raise
                except Exception as exc:
                    verdict = self._classify(exc, timeout)
                    answered, failure = not verdict.backend_fault, verdict.reason
                    LM_CALLS.labels("unparseable" if verdict.parse else "error").inc()
                    raise
                reliability.latency.add(time.monotonic() - begun)
                _CALLS_OK.inc()
                answered = True
                return answer
        finally:
            if answered is None:
                if probe:
                    reliability.breaker.release_probe()
            else:
                reliability.breaker.record(ok=answered, probe=probe, failure=failure)

    def _classify(self, exc: BaseException, timeout: float) -> Failure:
        """``classify``, with secrets masked in the reason (it reaches answers, the route log, logs)."""
        failure = classify(exc, timeout)
        return dataclasses.replace(failure, reason=self.backend.redact(failure.reason))

    def _retry_refusal(self, failure: Failure, delay: float) -> str:
        """Why this failure is not retried after ``delay`` seconds, or '' to retry."""
        reliability = self.backend.reliability
        retries, parse_retries = self.counts.retries, self.parse_retries
        if not failure.retryable:
            return "not retryable"
        if failure.parse and parse_retries >= PARSE_RETRIES:
            return "still unparseable"
        if not failure.parse and retries - parse_retries >= reliability.max_attempts - 1:
            return f"{reliability.max_attempts} attempts"
        usual = reliability.latency.quantile(0.5) or 0.0
        if delay + usual >= self.deadline.remaining():
            return "no time left before the deadline"
        if not reliability.retry_budget.try_spend():
            return "retry budget spent"
        return ""

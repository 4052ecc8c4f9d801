"""The circuit breaker of one LM backend.

States::

    closed ──(``threshold`` backend failures in a row)──► open
    open ──(``cooldown_s`` later, the next call becomes the probe)──► half-open
    half-open ──(the probe answers)──► closed
    half-open ──(the probe fails)──► open again, for another cooldown

While open, routes do not call the LM at all: they answer at once with the lexical judge.
In half-open exactly one call (the probe) is on the wire; the other calls of an admitted
route wait for its outcome instead of piling onto a backend that may still be down.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable

__all__ = ["BreakerOpenError", "BreakerState", "CircuitBreaker"]


class BreakerOpenError(Exception):
    """The breaker is open: the call was not made."""


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Counts consecutive backend failures; opens, probes and closes."""

    def __init__(
        self, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.opened_at = 0.0
        self.times_opened = 0
        self.last_failure = ""
        self._probe_in_flight = False
        self._changed = asyncio.Event()

    def _cooling(self) -> bool:
        return self.state is BreakerState.OPEN and self.clock() < self.opened_at + self.cooldown_s

    def accepts_routes(self) -> bool:
        """Whether a new route may use the LM (else it answers lexically at once)."""
        if self.state is BreakerState.HALF_OPEN:
            return not self._probe_in_flight
        return not self._cooling()

    async def admit(self) -> bool:
        """Wait until a call may go out; True when it is the half-open probe.

        Raises BreakerOpenError while the breaker is open and cooling down.
        """
        while True:
            if self.state is BreakerState.CLOSED:
                return False
            if self._cooling():
                raise BreakerOpenError(
                    f"circuit breaker open after {self.threshold} failures in a row; last: "
                    f"{self.last_failure}"
                )
            if not self._probe_in_flight:
                self.state = BreakerState.HALF_OPEN
                self._probe_in_flight = True
                return True
            await self._changed.wait()

    def record(self, *, ok: bool, probe: bool, failure: str = "") -> None:
        """The outcome of an admitted call: ``ok`` if the backend answered at all."""
        if ok:
            # Any answer, the probe's or a late one from before the breaker opened, shows the
            # backend is back.
            self.consecutive_failures = 0
            if self.state is not BreakerState.CLOSED:
                self._set(BreakerState.CLOSED)
            return
        self.consecutive_failures += 1
        self.last_failure = failure
        if (probe and self.state is BreakerState.HALF_OPEN) or (
            self.state is BreakerState.CLOSED and self.consecutive_failures >= self.threshold
        ):
            self.opened_at = self.clock()
            self.times_opened += 1
            self._set(BreakerState.OPEN)

    def release_probe(self) -> None:
        """The probe ended without an outcome (cancelled): let another call probe."""
        if self._probe_in_flight:
            self._probe_in_flight = False
            self._wake()

    def _set(self, state: BreakerState) -> None:
        self.state = state
        self._probe_in_flight = False
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

"""A budget of extra LM calls (retries, hedges) as a share of all calls over a sliding window.

Retrying every failure turns a struggling backend into a dead one: at 50 % errors, three
attempts per call nearly double the load. With a budget, extra calls stay at most
``minimum + ratio * calls`` over the last ``window_s`` seconds ("retries ≤ 10 % of calls"),
so an outage costs at most that much extra load; ``minimum`` lets a quiet service retry at all.
One budget per kind of extra call, shared by every route of the backend.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

__all__ = ["RatioBudget"]


class RatioBudget:
    """Extra calls allowed: ``minimum + ratio * calls`` within the sliding window."""

    def __init__(
        self,
        ratio: float,
        minimum: int = 0,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        buckets: int = 10,
        *,
        extra_calls_noted: bool = False,
    ) -> None:
        if not 0.0 <= ratio <= 1.0 or minimum < 0 or window_s <= 0 or buckets < 1:
            raise ValueError("ratio in [0, 1], minimum >= 0, window_s > 0, buckets >= 1")
        self.ratio = ratio
        self.minimum = minimum
        self.clock = clock
        # When the extra calls are noted as calls too, they leave the share's base: the budget is
        # a share of the other calls ("hedges <= 5 % of the calls", not of the calls and hedges).
        self._extra_noted = extra_calls_noted
        self._width = window_s / buckets
        self._buckets = buckets
        # (bucket number, calls, spent), oldest first; counts are per bucket of the window.
        self._window: deque[list[int]] = deque()
        self._calls = 0
        self._spent = 0
        self.total_calls = 0
        self.total_spent = 0
        self.total_refused = 0

    def _current(self) -> list[int]:
        now = math.floor(self.clock() / self._width)
        while self._window and self._window[0][0] <= now - self._buckets:
            _, calls, spent = self._window.popleft()
            self._calls -= calls
            self._spent -= spent
        if not self._window or self._window[-1][0] != now:
            self._window.append([now, 0, 0])
        return self._window[-1]

    def note_call(self) -> None:
        """Count one LM call (first attempts and extra calls alike)."""
        self._current()[1] += 1
        self._calls += 1
        self.total_calls += 1

    def _base(self) -> int:
        return self._calls - self._spent if self._extra_noted else self._calls

    def allowed(self) -> float:
        """Extra calls the window allows in all, spent ones included."""
        self._current()
        return self.minimum + self.ratio * self._base()

    def try_spend(self) -> bool:
        """Take one extra call from the budget; False when it is used up."""
        bucket = self._current()
        if self._spent + 1 > self.minimum + self.ratio * self._base():
            self.total_refused += 1
            return False
        bucket[2] += 1
        self._spent += 1
        self.total_spent += 1
        return True

"""A route's deadline: the time left for its LM calls, from one monotonic clock."""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["Deadline"]

# Time kept back from the LM calls to merge the votes and send the answer before the deadline.
RESERVE_SHARE = 0.05
MAX_RESERVE_S = 0.25


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a route's LM work must be over (``time.monotonic`` seconds)."""

    expires_at: float
    budget_s: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now."""
        return cls(time.monotonic() + seconds, seconds)

    def for_lm_calls(self) -> Deadline:
        """This deadline less the reserve for merging and answering."""
        reserve = min(MAX_RESERVE_S, RESERVE_SHARE * self.budget_s)
        return Deadline(self.expires_at - reserve, self.budget_s - reserve)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires_at - time.monotonic())

    def call_timeout(self, llm_timeout: float) -> float:
        """The timeout of one LM call: ``min(llm_timeout, time left)``."""
        return min(llm_timeout, self.remaining())

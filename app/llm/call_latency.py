"""Observed latency of successful LM calls: the hedging delay and the back-pressure estimate."""

from __future__ import annotations

from collections import deque

__all__ = ["LatencyWindow"]


class LatencyWindow:
    """The last ``size`` call latencies (seconds), with quantiles recomputed every few samples."""

    def __init__(self, size: int = 512, min_samples: int = 20, refresh_every: int = 16) -> None:
        self.min_samples = min_samples
        self._samples: deque[float] = deque(maxlen=size)
        self._refresh_every = refresh_every
        self._since_sort = 0
        self._sorted: list[float] = []

    def add(self, seconds: float) -> None:
        """Record one successful call's latency."""
        self._samples.append(seconds)
        self._since_sort += 1

    def __len__(self) -> int:
        return len(self._samples)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (nearest rank), or None before ``min_samples`` calls."""
        if len(self._samples) < self.min_samples:
            return None
        # Sorting 512 floats per call would cost more than the hedge saves; a slightly stale
        # quantile is as good a hedging delay as a fresh one.
        if self._since_sort >= self._refresh_every or len(self._sorted) < self.min_samples:
            self._sorted = sorted(self._samples)
            self._since_sort = 0
        rank = min(len(self._sorted) - 1, max(0, round(q * len(self._sorted)) - 1))
        return self._sorted[rank]

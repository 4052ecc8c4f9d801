"""A bounded least-recently-used map with hit and miss counters (the route and verdict caches)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CacheCounters:
    """A cache's counters; ``coalesced`` counts requests that joined an identical one in flight."""

    hits: int
    misses: int
    coalesced: int
    size: int
    capacity: int


class LRUCache(Generic[K, V]):
    """At most ``capacity`` entries (0 disables the cache); the least recently used goes first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[K, V] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.coalesced = 0

    def get(self, key: K) -> V | None:
        """The entry for ``key`` (counted as a hit), or None (counted as a miss)."""
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: K, value: V) -> None:
        """Store ``value``, evicting the least recently used entry when full."""
        if self.capacity <= 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def counters(self) -> CacheCounters:
        """The counters now."""
        return CacheCounters(self.hits, self.misses, self.coalesced, len(self._entries), self.capacity)


def normalize_question(question: str) -> str:
    """The cache form of a question: whitespace collapsed, case folded."""
    return " ".join(question.split()).casefold()

"""Automatic prefix caching as hosted providers and vLLM do it.

A prompt is cut into blocks of ``block_tokens``; block ``i`` is named by a hash chained over the
model and every token up to its end, so equal names mean equal prefixes. A call reuses the longest run of
leading blocks already cached (a hash lookup per block, stopping at the first miss), then caches
all of its own blocks. Prompts shorter than ``min_prompt_tokens`` neither read nor fill the cache
(OpenAI: 1,024 tokens, reported in 128-token steps; vLLM: 16-token blocks, no minimum). The last
token is always computed, as a server must to produce the first output token.

The cache is an LRU over blocks bounded by ``capacity_blocks``. A call touches its blocks from
the last to the first, so under pressure a prompt's tail is evicted before its head - the head is
what other prompts share (the system message, a chunk's cards) - as vLLM's free queue does.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict

__all__ = ["PrefixCache"]

_BYTES_PER_TOKEN = 4  # array("I")


class PrefixCache:
    """Which leading tokens of a prompt a recent prompt of the same model already computed."""

    def __init__(
        self, block_tokens: int = 128, min_prompt_tokens: int = 1024, capacity_blocks: int = 65536
    ) -> None:
        if block_tokens < 1 or capacity_blocks < 1 or min_prompt_tokens < 0:
            raise ValueError("blocks must hold a token, the cache a block, and the minimum not be negative")
        self.block_tokens = block_tokens
        self.min_prompt_tokens = min_prompt_tokens
        self.capacity_blocks = capacity_blocks
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def _block_names(self, model: str, ids: array[int]) -> list[int]:
        # Only whole blocks before the last token can be reused: the last one is always computed.
        whole = (len(ids) - 1) // self.block_tokens
        data = ids.tobytes()
        step = self.block_tokens * _BYTES_PER_TOKEN
        # Python's 64-bit hash, chained: 4x cheaper than blake2b per call (12 vs 50 us for 6,600
        # tokens); a collision among 65k blocks (~1e-10) would only misreport one cache hit.
        name = hash(model)
        names = []
        for i in range(whole):
            name = hash((name, data[i * step : (i + 1) * step]))
            names.append(name)
        return names

    def use(self, model: str, ids: array[int]) -> int:
        """How many leading tokens of ``ids`` were cached; caches this prompt's blocks."""
        if len(ids) < max(self.min_prompt_tokens, 1):
            return 0
        names = self._block_names(model, ids)
        hits = 0
        for name in names:
            if name not in self._blocks:
                break
            hits += 1
        for name in reversed(names):
            self._blocks[name] = None
            self._blocks.move_to_end(name)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)
        return hits * self.block_tokens

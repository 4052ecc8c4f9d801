"""What a call costs a real LM: the token-aware latency model and the provider profiles.

A call's modelled latency, in ms::

    ttft + prefill * uncached_prompt_tokens + prefill / 10 * cached_prompt_tokens
         + decode * completion_tokens

``ttft`` is the fixed part of the time to first token (network, queueing, scheduling); prefill
is the per-token cost of reading the prompt, ten times cheaper for tokens the prefix cache
already holds (``app.simulator.prefix_cache``); decode is the time per output token. When the
simulator is also given ``--latency-ms``, a draw from that distribution is added on top (jitter
of the network and the provider's queue); without any token option the fixed distribution
alone is the latency, as before.

Profiles (explicit options override their values):

- ``hosted-small``: a gpt-4o-mini-like hosted model: 400 ms to first token, 0.1 ms per prompt
  token (10k tokens/s prefill), 12 ms per output token, OpenAI's prefix cache (prompts of
  1,024 tokens or more, 128-token blocks), counted with ``o200k_base``.
- ``vllm-8b``: an 8B model (Llama-3.1-8B class) served by vLLM on one data-centre GPU under a
  moderate batch, on the local network: 60 ms to first token (scheduling, no internet hop),
  0.05 ms per prompt token (20k tokens/s prefill), 25 ms per output token (a stream's share of a
  batched decode), vLLM's automatic prefix caching (16-token blocks, no minimum length).
  Assumed, not measured here; the Llama tokenizer is not bundled, so ``o200k_base`` counts
  (within ~10 % of Llama 3's on English and identifiers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from app.simulator.prefix_cache import PrefixCache
from app.simulator.tokens import CHARS_PER_TOKEN, Tokenizer, TokenizerName, load_tokenizer

__all__ = [
    "PROFILES",
    "CachePolicy",
    "CallCost",
    "CostMeter",
    "Profile",
    "ProfileName",
    "TokenLatency",
    "build_meter",
]

ProfileName = Literal["hosted-small", "vllm-8b"]
# Cached prompt tokens are prefilled this many times faster than uncached ones.
CACHED_SPEEDUP = 10.0
# The prefix cache's default bound: 65,536 blocks (8M tokens of 128-token blocks), ~15 MB of names.
DEFAULT_CACHE_BLOCKS = 65536


@dataclass(frozen=True, slots=True)
class TokenLatency:
    """The token-aware part of a call's latency (see the module docstring for the formula)."""

    ttft_ms: float = 0.0
    prefill_ms_per_token: float = 0.0
    decode_ms_per_token: float = 0.0

    def __post_init__(self) -> None:
        if min(self.ttft_ms, self.prefill_ms_per_token, self.decode_ms_per_token) < 0:
            raise ValueError(f"token latency parameters must not be negative: {self}")

    def ms(self, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> float:
        """The modelled latency of one call, in ms."""
        uncached = prompt_tokens - cached_tokens
        prefill = self.prefill_ms_per_token * (uncached + cached_tokens / CACHED_SPEEDUP)
        return self.ttft_ms + prefill + self.decode_ms_per_token * completion_tokens


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How a provider's prefix cache cuts prompts into blocks and which prompts it caches."""

    block_tokens: int = 128
    min_prompt_tokens: int = 1024


@dataclass(frozen=True, slots=True)
class Profile:
    """A provider-like model: its latency, its prefix cache and its tokenizer."""

    latency: TokenLatency
    cache: CachePolicy
    tokenizer: TokenizerName = "o200k_base"


PROFILES: dict[str, Profile] = {
    "hosted-small": Profile(TokenLatency(400.0, 0.1, 12.0), CachePolicy(128, 1024)),
    "vllm-8b": Profile(TokenLatency(60.0, 0.05, 25.0), CachePolicy(16, 0)),
}


@dataclass(frozen=True, slots=True)
class CallCost:
    """One call's tokens and its modelled latency (0 when no token model is set)."""

    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    latency_ms: float


class CostMeter:
    """Counts a call's tokens, consults the prefix cache and prices the call in ms.

    Without a tokenizer, token model or cache (the fixed-latency default) a prompt's tokens are
    its joined messages' characters / 4, exactly as before, and nothing else is computed.
    """

    def __init__(
        self,
        tokenizer: Tokenizer | None = None,
        latency: TokenLatency | None = None,
        cache: PrefixCache | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.latency = latency
        self.cache = cache

    def cost(self, model: str, messages: Sequence[str], reply: str) -> CallCost:
        """The cost of answering ``messages`` (each message's text, in order) with ``reply``."""
        if self.tokenizer is None:
            prompt = math.ceil(len("\n".join(messages)) / CHARS_PER_TOKEN)
            completion = math.ceil(len(reply) / CHARS_PER_TOKEN)
            cached = 0
        else:
            ids = self.tokenizer.encode_messages(messages)
            prompt = len(ids)
            cached = self.cache.use(model, ids) if self.cache is not None else 0
            completion = self.tokenizer.count(reply)
        ms = self.latency.ms(prompt, cached, completion) if self.latency is not None else 0.0
        return CallCost(prompt, cached, completion, ms)


def build_meter(
    *,
    profile: ProfileName | None = None,
    ttft_ms: float | None = None,
    prefill_ms_per_token: float | None = None,
    decode_ms_per_token: float | None = None,
    prefix_cache: bool | None = None,
    prefix_cache_blocks: int = DEFAULT_CACHE_BLOCKS,
    tokenizer: TokenizerName | None = None,
) -> CostMeter:
    """The meter the options describe; an option given overrides the profile's value.

    A profile or any token option turns the token model on (unset parts are the profile's, or
    0). The prefix cache and a real tokenizer follow the token model unless set; with none of
    it the meter counts as the fixed-latency simulator always did.
    """
    base = PROFILES[profile] if profile is not None else None
    given = (ttft_ms, prefill_ms_per_token, decode_ms_per_token)
    latency: TokenLatency | None = None
    if base is not None or any(v is not None for v in given):
        default = base.latency if base is not None else TokenLatency()
        latency = TokenLatency(
            default.ttft_ms if ttft_ms is None else ttft_ms,
            default.prefill_ms_per_token if prefill_ms_per_token is None else prefill_ms_per_token,
            default.decode_ms_per_token if decode_ms_per_token is None else decode_ms_per_token,
        )
    cache_on = latency is not None if prefix_cache is None else prefix_cache
    if tokenizer is None and (latency is not None or cache_on):
        tokenizer = base.tokenizer if base is not None else "o200k_base"
    cache = None
    if cache_on:
        policy = base.cache if base is not None else CachePolicy()
        cache = PrefixCache(policy.block_tokens, policy.min_prompt_tokens, prefix_cache_blocks)
    return CostMeter(load_tokenizer(tokenizer) if tokenizer is not None else None, latency, cache)

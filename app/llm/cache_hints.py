"""Prompt-cache hints for the providers that take one.

Most providers cache a prompt's prefix on their own when it repeats: OpenAI (prompts of 1,024
tokens and more), DeepSeek, Gemini 2.5 (implicit caching), vLLM with ``--enable-prefix-caching``
and llama.cpp's server. The judge's prompt is laid out for them: instructions, then the chunk's
cards, the question last. Two providers want a hint as well:

- OpenAI's ``prompt_cache_key`` routes requests with the same key to the same cache: the
  judge sends one per chunk (a digest of its cards), so a chunk's calls from every route meet
  the cache that holds its prefix.
- Anthropic (and Claude on Bedrock or Vertex) caches only up to a ``cache_control`` breakpoint:
  the judge's user message is sent as two text parts, the cards marked ephemeral, the question
  after them.

``TABLEROUTER_LLM_CACHE_HINT=auto`` picks by the model string; ``off`` sends none.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["CacheHint", "CacheHintSetting", "cache_key", "resolve_cache_hint", "with_cache_breakpoint"]

CacheHintSetting = Literal["auto", "off", "prompt_cache_key", "cache_control"]
CacheHint = Literal["off", "prompt_cache_key", "cache_control"]
# Where the part of the judge's user message that changes per question begins.
QUESTION_MARKER = "[[ ## question ## ]]"
_ANTHROPIC = ("anthropic/", "bedrock/anthropic.", "bedrock/us.anthropic.", "vertex_ai/claude")


def resolve_cache_hint(setting: CacheHintSetting, model: str, api_base: str | None) -> CacheHint:
    """The hint to send for ``model``: ``auto`` names OpenAI's own API and Anthropic's models."""
    if setting != "auto":
        return setting
    if model.startswith(_ANTHROPIC):
        return "cache_control"
    # Only OpenAI itself knows prompt_cache_key; a self-hosted OpenAI-compatible server may refuse it.
    if model.startswith("openai/") and (api_base is None or "api.openai.com" in api_base):
        return "prompt_cache_key"
    return "off"


def cache_key(chunk_digest: str) -> str:
    """A chunk's prompt-cache key from its digest: the same cards give the same key, in every route
    and replica."""
    return "tr-" + chunk_digest[:24]


def with_cache_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with the last user message split before the question, the part before it cached."""
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, str):
            continue
        at = content.rfind(QUESTION_MARKER)
        if at <= 0:
            return messages
        parts = [
            {"type": "text", "text": content[:at], "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": content[at:]},
        ]
        return [*messages[:i], {**message, "content": parts}, *messages[i + 1 :]]
    return messages

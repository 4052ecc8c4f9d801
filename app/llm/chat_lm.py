"""A ``dspy.BaseLM`` for OpenAI-compatible ``/chat/completions`` endpoints, lean per call.

Profiling the judge at 64 calls in flight showed most of the router's CPU per LM call in
``dspy.LM``'s call machinery, not in the judge: two thread-pool hops per call (request
preparation and price lookup), the request rebuilt through three representations, and an
HTTP/1.1 client written in Python. For the endpoints the judge meets most (OpenAI, vLLM,
llama.cpp, Ollama's OpenAI door, the simulator) this LM posts the adapter's messages over
keep-alive connections (``app.llm.http1``: httptools' C parser, a third of aiohttp's CPU per
call; through an HTTP proxy too) and hands DSPy the reply text. Everything above the LM is
DSPy's: the program, its Predict, the adapter, loaded demos.

LM output is untrusted: a reply that is not a chat completion raises ``LMReplyError``; HTTP
errors raise ``LMHTTPError`` with the status and a short, single-line excerpt of the body.
"""

from __future__ import annotations

import asyncio
from typing import Any

import dspy
import orjson

from app.llm.dspy_internals import retry_after_seconds
from app.llm.http1 import OriginPool, Proxy

__all__ = ["ChatCompletionsLM", "LMHTTPError", "LMReplyError", "cached_prompt_tokens"]

# Generation options the judge may pass through DSPy; anything else DSPy adds is not sent.
_PASSED = ("temperature", "max_tokens", "stop", "seed", "top_p", "prompt_cache_key")
_EXCERPT = 200


class LMHTTPError(Exception):
    """The endpoint answered with an HTTP error status."""

    def __init__(self, status: int, body: bytes, retry_after: str | None = None) -> None:
        self.status = status
        self.retry_after = retry_after_seconds(retry_after)
        excerpt = " ".join(body[:_EXCERPT].decode("utf-8", "replace").split())
        super().__init__(f"HTTP {status}: {excerpt}")


class LMReplyError(ValueError):
    """The endpoint's reply is not a chat completion with text content."""


def _reply_text(body: bytes) -> tuple[str, dict[str, int]]:
    """The first choice's text and the usage counters of a chat completion body."""
    try:
        reply = orjson.loads(body)
        content = reply["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise LMReplyError(f"not a chat completion: {type(exc).__name__}") from exc
    if not isinstance(content, str):
        raise LMReplyError("the reply has no text content")
    usage = reply.get("usage") if isinstance(reply, dict) else None
    counts = {
        key: value
        for key, value in (usage.items() if isinstance(usage, dict) else ())
        if key in ("prompt_tokens", "completion_tokens", "total_tokens") and isinstance(value, int)
    }
    cached = cached_prompt_tokens(usage)
    if cached:
        counts["cached_prompt_tokens"] = cached
    return content, counts


def cached_prompt_tokens(usage: Any) -> int:
    """The prompt tokens a provider served from its prefix cache, as OpenAI-style usage reports them.

    OpenAI, DeepSeek (``prompt_cache_hit_tokens``), vLLM and LiteLLM's normalised usage put them in
    ``prompt_tokens_details.cached_tokens``; Anthropic through LiteLLM as
    ``cache_read_input_tokens``. Untrusted: anything but a non-negative int counts as 0.
    """
    if not isinstance(usage, dict):
        return 0
    details = usage.get("prompt_tokens_details")
    found = details.get("cached_tokens") if isinstance(details, dict) else None
    for alternative in ("prompt_cache_hit_tokens", "cache_read_input_tokens"):
        if not isinstance(found, int):
            found = usage.get(alternative)
    return found if isinstance(found, int) and found > 0 else 0


class ChatCompletionsLM(dspy.BaseLM):
    """POSTs DSPy's chat messages to ``{api_base}/chat/completions``; async only."""

    def __init__(
        self,
        model: str,
        *,
        api_base: str,
        api_key: str | None,
        timeout: float,
        max_connections: int,
        proxy: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 1024,
    ) -> None:
        super().__init__(
            model=model, temperature=temperature, max_tokens=max_tokens, cache=False, num_retries=0
        )
        # "openai/gpt-4o-mini" is DSPy's spelling; the endpoint wants the bare model name.
        self.wire_model = model.split("/", 1)[1] if "/" in model else model
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.headers = {"content-type": "application/json"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self.timeout = timeout
        self.max_connections = max_connections
        self.proxy = proxy
        # Parsed now, so a proxy URL the client cannot use fails at start-up, not on every call.
        self._proxy = Proxy.from_url(proxy) if proxy else None
        self._pool: OriginPool | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None

    def _origin(self) -> OriginPool:
        # Connections belong to the loop that made them: a new loop gets a new pool.
        loop = asyncio.get_running_loop()
        if self._pool is None or self._pool_loop is not loop:
            self._pool = OriginPool(self.url, self.headers, self.max_connections, self._proxy)
            self._pool_loop = loop
        return self._pool

    def _payload(self, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> bytes:
        options = {**self.kwargs, **kwargs}
        body: dict[str, Any] = {"model": self.wire_model, "messages": messages}
        body.update((k, options[k]) for k in _PASSED if options.get(k) is not None)
        return orjson.dumps(body)

    def __call__(self, prompt: str | None = None, messages: Any = None, **kwargs: Any) -> Any:
        raise NotImplementedError("ChatCompletionsLM is async only: use acall / Predict.acall")

    async def complete(self, messages: list[dict[str, Any]], **kwargs: Any) -> tuple[str, dict[str, int]]:
        """One completion: the reply text and its usage counters (prompt_tokens, completion_tokens)."""
        data = self._payload(messages, kwargs)
        async with asyncio.timeout(self.timeout):
            reply = await self._origin().post(data)
        if reply.status >= 400:
            raise LMHTTPError(reply.status, reply.body, reply.retry_after)
        return _reply_text(reply.body)

    async def acall(
        self, prompt: str | None = None, *, messages: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> list[str]:
        """One completion as DSPy's adapters expect it; usage goes to DSPy's tracker."""
        if messages is None:
            messages = [{"role": "user", "content": prompt or ""}]
        text, usage = await self.complete(messages, **kwargs)
        tracker = dspy.settings.usage_tracker
        if tracker is not None and usage:
            tracker.add_usage(self.model, usage)
        return [text]

    async def aclose(self) -> None:
        """Close the connections."""
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

"""Building the ``dspy.LM`` for the configured model, with an HTTP pool sized to the limiter.

Models DSPy 3.4's native engine (lm15) routes (``openai/`` for OpenAI or any OpenAI-compatible
server at ``LLM_API_BASE``, ``anthropic/``, ``ollama_chat/``, ``hosted_vllm/`` ...) use that
engine with a transport we build: the default one caps connections at 100 whatever our
limiter allows, and reads proxy variables on every call. Ours allows ``LLM_MAX_CONCURRENCY``
connections, so the limiter, not a hidden pool, bounds the calls. Anything else goes
through DSPy's LiteLLM engine. OpenAI-compatible chat models (``openai/``, ``hosted_vllm/``)
skip DSPy's LM call machinery altogether through ``ChatCompletionsLM`` (see ``app.llm.chat_lm``).
"""

from __future__ import annotations

import logging
import os
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import dspy

from app.llm.chat_lm import ChatCompletionsLM
from app.llm.dspy_internals import (
    AsyncLM15Engine,
    ConfigurationError,
    LM15Engine,
    RouterConfig,
    StdlibAsyncTransport,
    Timeouts,
    UnsupportedFeatureError,
)
from app.llm.limits import ObservedLimiter, local_limits
from app.llm.reliability import BackendReliability
from app.observability.redaction import Redactor, secrets_of
from app.settings import Settings

log = logging.getLogger(__name__)
# Local OpenAI-compatible servers (vLLM, llama.cpp, the simulator) ignore the key, but the
# OpenAI door refuses to send a request without one.
PLACEHOLDER_KEY = "not-needed"
# DSPy model prefixes that name an OpenAI-compatible /chat/completions endpoint.
CHAT_COMPLETIONS_PREFIXES = ("openai/", "hosted_vllm/")
OPENAI_API_BASE = "https://api.openai.com/v1"


class _InLoopEngine(AsyncLM15Engine):
    """lm15's async engine without its per-call thread hop.

    The stock engine resolves the provider in a worker thread on every call because building
    a provider may load credentials; ours are static strings, so after the first call this is
    a dictionary lookup and the thread hop is pure overhead on the hot path.
    """

    async def complete(self, request: Any) -> Any:
        provider, routed = self._target(request)
        return await provider.complete(routed)


@dataclass
class LMBackend:
    """One LM backend: the DSPy LM, its display name, and the limiter and reliability state
    (retry budget, breaker, hedging, route queue) that all requests share."""

    model: str
    lm: dspy.LM
    limiter: ObservedLimiter
    reliability: BackendReliability
    engine: str  # "chat-completions", "dspy-native" or "dspy-litellm"
    _engine: AsyncLM15Engine | None = None
    # Masks the key (and secret-shaped text) in failure reasons: a provider's error body may
    # echo the key, and reasons reach route answers, the route log and logs.
    redact: Redactor = field(default_factory=Redactor)

    async def aclose(self) -> None:
        """Close the HTTP connections of the backend."""
        if self._engine is not None:
            await self._engine.aclose()
        if isinstance(self.lm, ChatCompletionsLM):
            await self.lm.aclose()


def _native_engines(settings: Settings) -> tuple[LM15Engine, _InLoopEngine] | None:
    model = settings.llm_model or ""
    try:
        provider = LM15Engine(RouterConfig(env={})).resolve(model).provider
    except (ConfigurationError, UnsupportedFeatureError):
        return None
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    if key is None and settings.llm_api_base:
        key = PLACEHOLDER_KEY
    timeout = settings.llm_timeout
    common: dict[str, Any] = {
        "api_keys": {provider: key} if key else None,
        "base_urls": {provider: settings.llm_api_base} if settings.llm_api_base else None,
    }
    sync_config = RouterConfig(**common, timeouts=Timeouts(read=timeout, write=timeout, pool=timeout))
    transport = StdlibAsyncTransport(
        read_timeout=timeout,
        write_timeout=timeout,
        pool_timeout=timeout,
        max_connections=settings.llm_max_concurrency,
        # The stock transport reads the proxy variables from the environment on every call
        # (measured: about 1 ms per call); they are read once here instead.
        proxy=_env_proxy(settings.llm_api_base),
        trust_env=False,
    )
    return LM15Engine(sync_config), _InLoopEngine(RouterConfig(**common, transport=transport))


def _env_proxy(api_base: str | None) -> str | None:
    """The proxy the environment names for the LM's address, or None for a direct connection."""
    parsed = urlsplit(api_base or "https://api.openai.com")
    proxies = urllib.request.getproxies()
    url = proxies.get(parsed.scheme) or proxies.get("all")
    if not url or urllib.request.proxy_bypass(parsed.hostname or ""):
        return None
    return url


def build_backend(settings: Settings, limiter: ObservedLimiter | None = None) -> LMBackend | None:
    """The LM backend the settings describe, or None when no model is configured.

    ``limiter`` bounds its calls; by default the in-process limits of the settings.
    """
    if not settings.llm_model:
        return None
    # Otherwise DSPy fetches a model price list from the internet on the first call: a hidden
    # outbound request (5 s timeout) that a warehouse-side service must not make by surprise.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    common: dict[str, Any] = {
        # Retries are ours (one layer); DSPy's disk cache does blocking I/O and ignores api_base.
        "cache": False,
        "num_retries": 0,
        "temperature": settings.llm_temperature,
        "max_tokens": settings.llm_max_tokens,
    }
    limiter = limiter or ObservedLimiter(local_limits(settings), settings.llm_max_concurrency)
    reliability = BackendReliability(settings, seed=settings.seed, call_timeout_s=settings.llm_timeout)
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    redactor = Redactor(secrets_of(settings))
    if settings.llm_lean_chat and settings.llm_model.startswith(CHAT_COMPLETIONS_PREFIXES):
        api_base = settings.llm_api_base or OPENAI_API_BASE
        chat = ChatCompletionsLM(
            settings.llm_model,
            api_base=api_base,
            api_key=key or PLACEHOLDER_KEY,
            timeout=settings.llm_timeout,
            max_connections=settings.llm_max_concurrency,
            proxy=_env_proxy(api_base),
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
        )
        log.info("LM backend %s at %s/chat/completions", settings.llm_model, api_base.rstrip("/"))
        return LMBackend(
            settings.llm_model, chat, limiter, reliability, engine="chat-completions", redact=redactor
        )
    engines = _native_engines(settings)
    if engines is not None:
        sync_engine, async_engine = engines
        lm = dspy.LM(settings.llm_model, engine=sync_engine, async_engine=async_engine, **common)
        log.info(
            "LM backend %s on the native engine, %d connections",
            settings.llm_model,
            settings.llm_max_concurrency,
        )
        return LMBackend(
            settings.llm_model,
            lm,
            limiter,
            reliability,
            engine="dspy-native",
            _engine=async_engine,
            redact=redactor,
        )
    lm = dspy.LM(
        settings.llm_model,
        api_base=settings.llm_api_base,
        api_key=key,
        timeout=settings.llm_timeout,
        **common,
    )
    log.info("LM backend %s on DSPy's LiteLLM engine", settings.llm_model)
    return LMBackend(settings.llm_model, lm, limiter, reliability, engine="dspy-litellm", redact=redactor)

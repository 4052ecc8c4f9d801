"""The parts of DSPy we use that its public top-level ``dspy`` API does not offer.

Written against DSPy 3.4.1. Everything else in the service uses ``dspy.X`` only; every import
of a DSPy module below the top level lives here, so a DSPy upgrade has one file to check (and
``tests/test_dspy_internals.py`` keeps it that way). Why each is needed:

- ``StdlibAsyncTransport`` (``dspy._vendor.lm15.transports``): the native engine's HTTP
  transport. We build our own so its pool allows ``LLM_MAX_CONCURRENCY`` connections (the
  stock one caps at 100) and reads the proxy variables once, not on every call.
- ``LM15Engine``, ``AsyncLM15Engine`` (``dspy.clients.engines.lm15_engine``): the engines
  ``dspy.LM(engine=..., async_engine=...)`` takes; we subclass the async one to skip its
  per-call thread hop (``app.llm.backend``).
- ``RouterConfig``, ``Timeouts``, ``ConfigurationError``, ``UnsupportedFeatureError``
  (``dspy.lm15``): to configure those engines, and to learn whether lm15 routes a model at all
  (otherwise the backend falls back to DSPy's LiteLLM engine).
- ``retry_after_seconds`` (``dspy.clients._http``): parses a ``Retry-After`` header (seconds or
  an HTTP date) exactly as DSPy's own engines do, so both of our paths honour it alike.
- ``expand_legacy_type_markers`` (``dspy.adapters._legacy_type_markers``): the last step of
  ``ChatAdapter.format``, which ``JudgeAdapter.messages`` repeats so its messages stay
  ChatAdapter's (``tests/test_judge_adapter.py`` holds them equal).
"""

from __future__ import annotations

from dspy._vendor.lm15.transports import StdlibAsyncTransport
from dspy.adapters._legacy_type_markers import (
    _expand_legacy_custom_type_markers_in_chat_message as expand_legacy_type_markers,
)
from dspy.clients._http import retry_after_seconds
from dspy.clients.engines.lm15_engine import AsyncLM15Engine, LM15Engine
from dspy.lm15 import ConfigurationError, RouterConfig, Timeouts, UnsupportedFeatureError

__all__ = [
    "AsyncLM15Engine",
    "ConfigurationError",
    "LM15Engine",
    "RouterConfig",
    "StdlibAsyncTransport",
    "Timeouts",
    "UnsupportedFeatureError",
    "expand_legacy_type_markers",
    "retry_after_seconds",
]

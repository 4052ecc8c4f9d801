"""The LM simulator: an OpenAI-compatible chat server that answers the judge's prompts.

Tests, benchmarks and users load-test against it without paying for tokens. It reads the
judge prompt (``app.simulator.protocol``), decides relevance with a seeded policy
(``app.simulator.policy``), waits a latency drawn per call (``app.simulator.latency``) plus, when
asked, what the call's tokens would cost a real model (``app.simulator.costs``: time to first
token, prefill of the prompt the prefix cache does not hold, decode of the reply), injects
faults at configured rates (``app.simulator.faults``) and counts calls, tokens, cached tokens,
latency, faults and concurrency at ``/stats``. Each reply carries the latency it was given in
the ``x-sim-latency-ms`` header.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/embeddings`` (``app.simulator.embeddings``),
``GET /v1/models``, ``GET /stats``, ``POST /stats/reset``, ``GET /prompts`` (the latest prompts
received), ``GET``/``POST /faults`` (read or replace the fault rates while running),
``GET /healthz``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.serving import serve_in_loop
from app.simulator.costs import DEFAULT_CACHE_BLOCKS, PROFILES, CostMeter, ProfileName, build_meter
from app.simulator.embeddings import SimulatorEmbeddings
from app.simulator.faults import FaultRates
from app.simulator.gullible import GulliblePolicy
from app.simulator.latency import Latency, parse_latency
from app.simulator.policy import LexicalPolicy, OraclePolicy, Policy, load_oracle
from app.simulator.server import TRANSPORT_KEY, SimulatorEndpoints, SimulatorStats
from app.simulator.tokens import TokenizerName

__all__ = [
    "FaultRates",
    "SimulatorConfig",
    "SimulatorStats",
    "add_arguments",
    "create_simulator_app",
    "run_from_args",
    "running_simulator",
]


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything the simulator can be told: where to listen, how slow and how right to be."""

    host: str = "127.0.0.1"
    port: int = 8400
    latency_ms: str | float = 0.0
    policy: Literal["lexical", "oracle"] = "lexical"
    oracle: Path | None = None
    fnr: float = 0.0
    fpr: float = 0.0
    seed: int = 0
    model_name: str = "tablerouter-sim"
    faults: FaultRates = field(default_factory=FaultRates)
    # Obey instructions found in table cards, as a weak model might (app.simulator.gullible).
    gullible: bool = False
    # Answer 401 to a request without this key, echoing the key it got, as a careless provider does.
    api_key: str | None = None
    # The token-aware latency model (app.simulator.costs); None: the profile's value, or off.
    profile: ProfileName | None = None
    ttft_ms: float | None = None
    prefill_ms_per_token: float | None = None
    decode_ms_per_token: float | None = None
    # None: on exactly when the token model is.
    prefix_cache: bool | None = None
    prefix_cache_blocks: int = DEFAULT_CACHE_BLOCKS
    # None: o200k_base with the token model or the cache, else 4 characters a token.
    tokenizer: TokenizerName | None = None

    def __post_init__(self) -> None:
        parse_latency(self.latency_ms)
        if self.profile is not None and self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}: use one of {', '.join(PROFILES)}")
        for name in ("ttft_ms", "prefill_ms_per_token", "decode_ms_per_token"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"{name} must not be negative, not {value}")
        if self.prefix_cache_blocks < 1:
            raise ValueError("prefix_cache_blocks must be at least 1")
        for name, rate in (("fnr", self.fnr), ("fpr", self.fpr)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {rate}")
        if self.policy == "oracle" and self.oracle is None:
            raise ValueError("the oracle policy needs an oracle file")

    @property
    def latency(self) -> Latency:
        """The parsed latency distribution."""
        return parse_latency(self.latency_ms)

    def build_meter(self) -> CostMeter:
        """What each call costs: its tokens, its cached prefix, its modelled latency."""
        return build_meter(
            profile=self.profile,
            ttft_ms=self.ttft_ms,
            prefill_ms_per_token=self.prefill_ms_per_token,
            decode_ms_per_token=self.decode_ms_per_token,
            prefix_cache=self.prefix_cache,
            prefix_cache_blocks=self.prefix_cache_blocks,
            tokenizer=self.tokenizer,
        )

    def build_policy(self) -> Policy:
        """The relevance policy, the oracle file read now."""
        policy: Policy = LexicalPolicy(seed=self.seed)
        if self.policy == "oracle" and self.oracle is not None:
            policy = OraclePolicy(load_oracle(self.oracle), fnr=self.fnr, fpr=self.fpr, seed=self.seed)
        return GulliblePolicy(policy) if self.gullible else policy


class _SimulatorApp(Starlette):
    """Starlette that hands the endpoints the connection's transport, which a reset fault aborts."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn's send is a method of the connection's request cycle, which holds the transport.
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is not None:
            scope[TRANSPORT_KEY] = transport
        await super().__call__(scope, receive, send)


def create_simulator_app(config: SimulatorConfig) -> Starlette:
    """The simulator's ASGI app; each app has its own counters."""
    sim = SimulatorEndpoints(
        config.build_policy(),
        config.latency,
        config.seed,
        config.model_name,
        config.faults,
        api_key=config.api_key,
        meter=config.build_meter(),
    )
    endpoints: list[tuple[str, Callable[[Request], Awaitable[Response]], str]] = [
        ("/v1/chat/completions", sim.chat_completions, "POST"),
        ("/v1/embeddings", SimulatorEmbeddings(config.model_name).embeddings, "POST"),
        ("/v1/models", sim.models, "GET"),
        ("/stats", sim.get_stats, "GET"),
        ("/stats/reset", sim.reset_stats, "POST"),
        ("/prompts", sim.get_prompts, "GET"),
        ("/faults", sim.get_faults, "GET"),
        ("/faults", sim.set_faults, "POST"),
        ("/healthz", sim.healthz, "GET"),
    ]
    app = _SimulatorApp(routes=[Route(path, fn, methods=[method]) for path, fn, method in endpoints])
    app.state.simulator = sim
    return app


@contextlib.asynccontextmanager
async def running_simulator(config: SimulatorConfig) -> AsyncIterator[str]:
    """Serve the simulator on this event loop; yields its base URL (``port=0`` picks a free port)."""
    async with serve_in_loop(create_simulator_app(config), config.host, config.port, lifespan="off") as url:
        yield url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``lmsim`` options."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8400)
    parser.add_argument(
        "--latency-ms",
        default="0",
        help="ms per call: a number, uniform:LOW:HIGH, lognormal:MEDIAN:SIGMA, normal:MEAN:SD "
        "or tail:P50:P99",
    )
    parser.add_argument("--policy", choices=["lexical", "oracle"], default="lexical")
    parser.add_argument(
        "--oracle",
        type=Path,
        metavar="FILE",
        help='JSON lines {"question": ..., "gold_tables": [...]}; implies --policy oracle',
    )
    parser.add_argument("--fnr", type=float, default=0.0, help="oracle: chance a gold table is missed")
    parser.add_argument("--fpr", type=float, default=0.0, help="oracle: chance another table is picked")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-name", default="tablerouter-sim")
    parser.add_argument(
        "--gullible",
        action="store_true",
        help="obey instructions found in table cards ('select table X', 'ignore previous instructions')",
    )
    parser.add_argument(
        "--api-key",
        help="answer 401 to requests without this bearer key, echoing the key sent (a careless provider)",
    )
    _add_cost_arguments(parser)
    faults = parser.add_argument_group("faults", "chance per call of each fault (they add up to <= 1)")
    for name, what in _FAULT_FLAGS.items():
        faults.add_argument(f"--{name.replace('_', '-')}-rate", type=float, default=0.0, help=what)
    faults.add_argument("--retry-after-s", type=float, default=1.0, help="Retry-After of a 429, seconds")
    faults.add_argument("--hang-s", type=float, default=600.0, help="how long a hung call hangs")
    faults.add_argument(
        "--hang-on-table",
        action="append",
        default=[],
        metavar="NAME",
        help="hang every call whose chunk holds this table (repeatable)",
    )
    faults.add_argument(
        "--hang-once-on-table",
        action="append",
        default=[],
        metavar="NAME",
        help="hang the first call of each prompt whose chunk holds this table; retries answer (repeatable)",
    )


def _add_cost_arguments(parser: argparse.ArgumentParser) -> None:
    costs = parser.add_argument_group(
        "token costs",
        "latency ms = ttft + prefill x uncached prompt tokens + prefill/10 x cached prompt tokens "
        "+ decode x completion tokens, plus a --latency-ms draw; without these options the "
        "--latency-ms draw alone",
    )
    costs.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="hosted-small: gpt-4o-mini-like (ttft 400, prefill 0.1, decode 12, OpenAI's prefix cache); "
        "vllm-8b: an 8B model on vLLM, one GPU, LAN (ttft 60, prefill 0.05, decode 25, 16-token "
        "prefix blocks); options given override it",
    )
    costs.add_argument("--ttft-ms", type=float, help="fixed part of the time to first token")
    costs.add_argument("--prefill-ms-per-token", type=float, help="ms per uncached prompt token")
    costs.add_argument("--decode-ms-per-token", type=float, help="ms per completion token")
    costs.add_argument(
        "--prefix-cache",
        action=argparse.BooleanOptionalAction,
        help="reuse the longest block-aligned prefix shared with a recent prompt of the same model "
        "(default: on with the token model)",
    )
    costs.add_argument(
        "--prefix-cache-blocks",
        type=int,
        default=DEFAULT_CACHE_BLOCKS,
        help="blocks the prefix cache keeps (LRU)",
    )
    costs.add_argument(
        "--tokenizer",
        choices=["o200k_base", "cl100k_base", "estimate"],
        help="how tokens are counted (default: o200k_base with the token model or the cache, "
        "else 4 characters a token)",
    )


_FAULT_FLAGS = {
    "rate_limit": "429 with Retry-After",
    "server_error": "500",
    "reset": "connection reset before any response byte",
    "hang": "no answer for --hang-s",
    "truncated": "reply content cut mid-JSON (finish_reason length)",
    "malformed": "reply content that is not JSON",
    "invented": "verdicts naming tables the chunk does not hold",
}


def _faults_from_args(args: argparse.Namespace) -> FaultRates:
    rates = {name: getattr(args, f"{name}_rate") for name in _FAULT_FLAGS}
    return FaultRates(
        **rates,
        retry_after_s=args.retry_after_s,
        hang_s=args.hang_s,
        hang_on_tables=tuple(args.hang_on_table),
        hang_once_on_tables=tuple(args.hang_once_on_table),
    )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The config the parsed ``lmsim`` options describe."""
    return SimulatorConfig(
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        policy="oracle" if args.oracle is not None else args.policy,
        oracle=args.oracle,
        fnr=args.fnr,
        fpr=args.fpr,
        seed=args.seed,
        model_name=args.model_name,
        faults=_faults_from_args(args),
        gullible=args.gullible,
        api_key=args.api_key,
        profile=args.profile,
        ttft_ms=args.ttft_ms,
        prefill_ms_per_token=args.prefill_ms_per_token,
        decode_ms_per_token=args.decode_ms_per_token,
        prefix_cache=args.prefix_cache,
        prefix_cache_blocks=args.prefix_cache_blocks,
        tokenizer=args.tokenizer,
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Serve the simulator until stopped; 2 on a bad option or oracle file."""
    try:
        config = config_from_args(args)
        app = create_simulator_app(config)
    except (ValueError, OSError) as exc:
        print(f"lmsim: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=config.host, port=config.port, access_log=False, lifespan="off")
    return 0

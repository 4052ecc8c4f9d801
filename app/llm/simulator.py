"""The LM simulator: an OpenAI-compatible chat server that answers the judge's prompts.

Tests, benchmarks and users load-test against it without paying for tokens. It reads the
judge prompt (``app.llm.sim_protocol``), decides relevance with a seeded policy
(``app.llm.sim_policy``), waits a latency drawn per call (``app.llm.sim_latency``) and
counts calls, tokens and concurrency at ``/stats``.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/embeddings`` (``app.llm.sim_embeddings``),
``GET /v1/models``, ``GET /stats``,
``POST /stats/reset``, ``GET /healthz``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.llm.sim_embeddings import SimulatorEmbeddings
from app.llm.sim_latency import Latency, parse_latency
from app.llm.sim_policy import LexicalPolicy, OraclePolicy, Policy, load_oracle
from app.llm.sim_server import SimulatorEndpoints, SimulatorStats
from app.serving import serve_in_loop

__all__ = [
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

    def __post_init__(self) -> None:
        parse_latency(self.latency_ms)
        for name, rate in (("fnr", self.fnr), ("fpr", self.fpr)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {rate}")
        if self.policy == "oracle" and self.oracle is None:
            raise ValueError("the oracle policy needs an oracle file")

    @property
    def latency(self) -> Latency:
        """The parsed latency distribution."""
        return parse_latency(self.latency_ms)

    def build_policy(self) -> Policy:
        """The relevance policy, the oracle file read now."""
        if self.policy == "oracle" and self.oracle is not None:
            return OraclePolicy(load_oracle(self.oracle), fnr=self.fnr, fpr=self.fpr, seed=self.seed)
        return LexicalPolicy(seed=self.seed)


def create_simulator_app(config: SimulatorConfig) -> Starlette:
    """The simulator's ASGI app; each app has its own counters."""
    sim = SimulatorEndpoints(config.build_policy(), config.latency, config.seed, config.model_name)
    endpoints: list[tuple[str, Callable[[Request], Awaitable[Response]], str]] = [
        ("/v1/chat/completions", sim.chat_completions, "POST"),
        ("/v1/embeddings", SimulatorEmbeddings(config.model_name).embeddings, "POST"),
        ("/v1/models", sim.models, "GET"),
        ("/stats", sim.get_stats, "GET"),
        ("/stats/reset", sim.reset_stats, "POST"),
        ("/healthz", sim.healthz, "GET"),
    ]
    app = Starlette(routes=[Route(path, fn, methods=[method]) for path, fn, method in endpoints])
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
        help="ms per call: a number, uniform:LOW:HIGH, lognormal:MEDIAN:SIGMA or normal:MEAN:SD",
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

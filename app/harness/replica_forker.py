"""Imports the service once, then forks a ``tablerouter serve`` replica per order on stdin.

Orders are JSON lines ``{"port", "env", "cwd", "log"}``; the answer is the child's pid. The
children are reaped automatically; stdin's end ends the forker (not its children).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys

import sqlalchemy.dialects.postgresql.asyncpg  # noqa: F401  (imported on first connect otherwise)

import app.main  # the point: import everything heavy before forking
import app.redis_link  # noqa: F401  (app.main imports Redis's client only when configured)
from app import cli
from app.llm.backend import build_backend
from app.llm.prices import prices_for
from app.settings import Settings


def _warm_up() -> None:
    """Run what DSPy, lm15 and the price list import lazily on first use, so no child repeats it."""
    settings = Settings.model_validate({"llm_model": "openai/warm-up", "llm_api_base": "http://127.0.0.1:9"})
    build_backend(settings)
    prices_for(settings)  # LiteLLM's price list, parsed once (no LiteLLM import: app/llm/prices.py)


def _serve_child(order: dict[str, object]) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    log = os.open(str(order["log"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    env = order["env"]
    assert isinstance(env, dict)
    os.environ.update({str(k): str(v) for k, v in env.items()})
    os.chdir(str(order["cwd"]))
    code = 1
    try:
        code = cli.main(["serve", "--port", str(order["port"]), "--log-level", "warning"])
    finally:
        os._exit(code)


def main() -> None:
    _warm_up()
    # What the imports left is never garbage: frozen, no child's collection scans (and so copies)
    # it again.
    gc.freeze()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # no zombies: nobody waits for the children
    for line in sys.stdin:
        order = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _serve_child(order)
        print(pid, flush=True)


if __name__ == "__main__":
    main()

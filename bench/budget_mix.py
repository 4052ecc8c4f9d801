"""A key's daily token budget against a mix of routes at once: LM tokens spent / budget.

One service (the demo warehouse, auth on, no route or verdict cache) and the simulator over a
real socket, 30-60 ms a call so that routes overlap. A key whose ``daily_tokens`` covers
``--budget-routes`` routes sends, all at once, ``--singles`` single routes, a batch of
``--batch`` and ``--streams`` event streams. The simulator's own counters say what the LM was
asked to spend. Side by side, in one run, on fresh keys:

- admission only: the limits as they were before routes held tokens (each route is admitted
  while the day is not spent, and spends as if alone) - the same service, its limits wrapped
  so that no route gets a hold;
- held: every route holds its planned tokens before its LM calls.

    uv run python -m bench.budget_mix --rounds 3

The simulator is not an LM: its replies are shorter and steadier than a real model's, so the
planned and the real token counts agree more closely than they would with a provider; what
passes the budget in a real deployment is the estimate's error (retries, hedges, long replies).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

import httpx

from app.api.state import AppState
from app.auth.key_holds import KeyHold
from app.auth.key_limits import KeyLimiter
from app.auth.principal import Principal
from app.harness.service import app_state, service_app_client
from app.settings import Settings
from app.simulator.service import SimulatorConfig, running_simulator

ADMIN_KEY = "bench-admin-key-0123456789abcdef0123456789"
QUESTIONS = [
    "Which customers placed the most orders?",
    "Total revenue per product category last month",
    "Which suppliers ship the products that were returned most?",
]


class AdmissionOnly:
    """The key limits with no hold: a route is only checked when admitted."""

    def __init__(self, limits: KeyLimiter) -> None:
        self.limits = limits

    async def admit(self, principal: Principal, routes: int = 1) -> None:
        await self.limits.admit(principal, routes)

    async def spend(self, principal: Principal, tokens: int, cost_usd: float | None) -> None:
        await self.limits.spend(principal, tokens, cost_usd)

    def hold(self, principal: Principal, route_id: str) -> KeyHold | None:
        return None


async def _key(client: httpx.AsyncClient, daily_tokens: int) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    body = {"name": "mix", "grants": {"demo": ["*"]}, "rate_limit": 0, "daily_tokens": daily_tokens}
    made = await client.post("/keys", json=body, headers=admin)
    made.raise_for_status()
    return {"Authorization": f"Bearer {made.json()['secret']}"}


def _body(i: int) -> dict[str, Any]:
    return {"question": QUESTIONS[i % len(QUESTIONS)]}


async def mix(client: httpx.AsyncClient, headers: dict[str, str], args: argparse.Namespace) -> int:
    """Send the mix at once; how many routes were answered."""
    sse = {**headers, "Accept": "text/event-stream"}
    calls = [client.post("/route", json=_body(i), headers=headers) for i in range(args.singles)]
    calls += [client.post("/route", json=_body(i), headers=sse) for i in range(args.streams)]
    batch = {"requests": [_body(i) for i in range(args.batch)]}
    *responses, batched = await asyncio.gather(
        *calls, client.post("/route/batch", json=batch, headers=headers)
    )
    answered = sum(r.status_code == 200 and "event: error" not in r.text for r in responses)
    if batched.status_code == 200:
        answered += sum(item["result"] is not None for item in batched.json()["results"])
    return answered


async def run(args: argparse.Namespace) -> None:
    async with running_simulator(SimulatorConfig(port=0, latency_ms="uniform:30:60")) as sim_url:
        sim = httpx.AsyncClient(base_url=sim_url)
        with tempfile.TemporaryDirectory(prefix="tablerouter-budget-") as tmp:
            settings = Settings(
                auth=True,
                admin_key=ADMIN_KEY,
                database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'store.db'}",
                demo_warehouse_path=str(Path(tmp) / "demo.db"),
                llm_model="openai/tablerouter-sim",
                llm_api_base=f"{sim_url}/v1",
                key_rate_limit=0,
                route_cache_size=0,
                verdict_cache_size=0,
                max_batch=max(32, args.batch),
            )
            async with service_app_client(settings) as (app, client):
                state: AppState = app_state(app)
                held = state.limits
                one = await client.post(
                    "/route", json=_body(0), headers={"Authorization": f"Bearer {ADMIN_KEY}"}
                )
                budget = args.budget_routes * int(one.json()["stats"]["estimated_tokens"])
                ratios: dict[str, list[float]] = {"admission only": [], "held": []}
                for round_ in range(args.rounds):
                    for name, limits in (("admission only", AdmissionOnly(held)), ("held", held)):
                        state.limits = limits
                        headers = await _key(client, budget)
                        await sim.post("/stats/reset")
                        answered = await mix(client, headers, args)
                        stats = (await sim.get("/stats")).json()
                        spent = int(stats["prompt_tokens"]) + int(stats["completion_tokens"])
                        ratios[name].append(spent / budget)
                        print(f"round {round_ + 1} {name}: {answered} answered, {spent} tokens", flush=True)
        await sim.aclose()
    routes = args.singles + args.batch + args.streams
    print(
        f"\n{routes} routes at once ({args.singles} single, a batch of {args.batch}, {args.streams} streams)"
    )
    print(f"against a key's daily budget of {budget} tokens ({args.budget_routes} routes' plans):")
    for name, values in ratios.items():
        each = ", ".join(f"{v:.3f}" for v in values)
        print(f"  {name:>15}: LM tokens / budget = {max(values):.3f} at most ({each})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-routes", type=int, default=4)
    parser.add_argument("--singles", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

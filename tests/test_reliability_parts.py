"""The reliability parts alone: retry budget, breaker, latency window, backoff, hedging, faults."""

from __future__ import annotations

import asyncio
import random

import pytest
from dspy import (
    AdapterParseError,
    LMAuthError,
    LMInvalidRequestError,
    LMRateLimitError,
    LMServerError,
    LMTransportError,
)

from app.llm.breaker import BreakerOpenError, BreakerState, CircuitBreaker
from app.llm.call_latency import LatencyWindow
from app.llm.failures import backoff_s, classify
from app.llm.ratio_budget import RatioBudget
from app.routing.judging.hedging import hedged
from app.routing.judging.signature import JudgeTables
from app.simulator.faults import FaultPicker, FaultRates
from app.simulator.latency import Latency, parse_latency


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state, read fresh (mypy would keep an earlier assert's narrowing)."""
    return breaker.state


def test_retry_budget_allows_a_share_of_calls_in_the_window() -> None:
    clock = Clock()
    budget = RatioBudget(0.1, minimum=0, window_s=10, clock=clock)
    assert not budget.try_spend()
    for _ in range(100):
        budget.note_call()
    assert sum(budget.try_spend() for _ in range(30)) == 10
    clock.now += 11  # the window slid past every call
    assert not budget.try_spend()
    assert budget.total_spent == 10
    assert budget.total_refused == 22


def test_a_budget_whose_extra_calls_are_noted_is_a_share_of_the_other_calls() -> None:
    budget = RatioBudget(0.05, minimum=0, window_s=10, clock=Clock(), extra_calls_noted=True)
    for _ in range(2000):
        budget.note_call()
    spent = 0
    while budget.try_spend():
        budget.note_call()  # the hedge is a call too
        spent += 1
    assert spent == 100  # 5 % of the 2,000 first calls (of every call made, it would be 105)


def test_retry_budget_minimum_lets_a_quiet_service_retry() -> None:
    budget = RatioBudget(0.1, minimum=3, window_s=10, clock=Clock())
    budget.note_call()
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]


def test_retry_budget_window_slides_bucket_by_bucket() -> None:
    clock = Clock()
    budget = RatioBudget(0.5, window_s=10, clock=clock)
    for _ in range(10):
        budget.note_call()
    clock.now += 5
    for _ in range(10):
        budget.note_call()
    assert budget.allowed() == 10
    clock.now += 5.5  # the first ten calls leave the window, the last ten stay
    assert budget.allowed() == 5


async def test_breaker_opens_after_failures_in_a_row_then_probes_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown_s=5, clock=clock)
    for _ in range(2):
        assert await breaker.admit() is False
        breaker.record(ok=False, probe=False, failure="boom")
    breaker.record(ok=True, probe=False)  # a success resets the count
    for _ in range(3):
        breaker.record(ok=False, probe=False, failure="boom")
    assert state(breaker) is BreakerState.OPEN
    assert not breaker.accepts_routes()
    with pytest.raises(BreakerOpenError, match="boom"):
        await breaker.admit()
    clock.now += 5
    assert breaker.accepts_routes()
    assert await breaker.admit() is True  # the probe
    assert state(breaker) is BreakerState.HALF_OPEN
    assert not breaker.accepts_routes()
    waiting = asyncio.create_task(breaker.admit())
    await asyncio.sleep(0)
    assert not waiting.done()  # the others wait for the probe's outcome
    breaker.record(ok=False, probe=True, failure="still down")
    with pytest.raises(BreakerOpenError, match="still down"):
        await waiting
    clock.now += 5
    assert await breaker.admit() is True
    breaker.record(ok=True, probe=True)
    assert state(breaker) is BreakerState.CLOSED
    assert await breaker.admit() is False
    assert breaker.times_opened == 2


async def test_breaker_lets_another_call_probe_when_the_probe_is_cancelled() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown_s=1, clock=clock)
    breaker.record(ok=False, probe=False)
    clock.now += 1
    assert await breaker.admit() is True
    second = asyncio.create_task(breaker.admit())
    await asyncio.sleep(0)
    breaker.release_probe()
    assert await second is True


def test_latency_window_quantiles_after_enough_samples() -> None:
    window = LatencyWindow(size=100, min_samples=10)
    for ms in range(1, 10):
        window.add(ms / 1000)
    assert window.quantile(0.95) is None
    for ms in range(10, 101):
        window.add(ms / 1000)
    assert window.quantile(0.5) == pytest.approx(0.05)
    assert window.quantile(0.95) == pytest.approx(0.095)


def test_backoff_is_jittered_exponential_and_capped() -> None:
    rng = random.Random(1)
    draws = [[backoff_s(n, 0.1, 1.0, rng) for _ in range(200)] for n in range(6)]
    for n, values in enumerate(draws):
        assert all(0 <= v <= min(1.0, 0.1 * 2**n) for v in values)
    assert max(draws[5]) > 0.9  # capped at 1 s, yet spread up to it
    assert len({round(v, 6) for v in draws[0]}) > 100  # jittered, not one value


def test_failures_are_classified_for_retry_and_breaker() -> None:
    rate = classify(LMRateLimitError("slow down", retry_after=2.5), 30)
    assert (rate.retryable, rate.backend_fault, rate.retry_after) == (True, True, 2.5)
    for exc in (LMServerError("500"), LMTransportError("reset"), TimeoutError()):
        failure = classify(exc, 30)
        assert failure.retryable
        assert failure.backend_fault
    parse = classify(AdapterParseError("JudgeAdapter", JudgeTables, "junk"), 30)
    assert (parse.retryable, parse.backend_fault, parse.parse) == (True, False, True)
    invalid = classify(LMInvalidRequestError("context window"), 30)
    assert (invalid.retryable, invalid.backend_fault) == (False, False)
    auth = classify(LMAuthError("bad key"), 30)
    assert (auth.retryable, auth.backend_fault) == (False, True)
    bug = classify(KeyError("ours"), 30)
    assert (bug.retryable, bug.backend_fault) == (False, False)
    assert classify(BreakerOpenError("open"), 30).retryable is False


async def _answer_after(seconds: float, value: str, started: asyncio.Event | None) -> str:
    if started is not None:
        started.set()
    await asyncio.sleep(seconds)
    return value


async def test_hedge_answers_first_and_the_slow_attempt_is_cancelled() -> None:
    delays = iter([60.0, 0.0])
    attempts: list[asyncio.Task[object]] = []
    hedges: list[int] = []

    async def attempt(started: asyncio.Event | None) -> str:
        task = asyncio.current_task()
        assert task is not None
        attempts.append(task)
        return await _answer_after(next(delays), f"attempt {len(attempts)}", started)

    result = await hedged(attempt, 0.01, lambda: True, lambda: hedges.append(1))
    assert result == "attempt 2"
    assert hedges == [1]
    assert attempts[0].cancelled()  # gone before hedged() returned: its slot is free


async def test_no_hedge_when_refused_or_unlearned() -> None:
    calls: list[int] = []

    async def attempt(started: asyncio.Event | None) -> str:
        calls.append(1)
        return await _answer_after(0.05, "only", started)

    assert await hedged(attempt, 0.001, lambda: False, lambda: None) == "only"
    assert await hedged(attempt, None, lambda: True, lambda: None) == "only"
    assert len(calls) == 2


async def test_hedge_waits_for_the_other_attempt_when_one_fails() -> None:
    outcomes = iter(["slow-ok", "fail"])

    async def attempt(started: asyncio.Event | None) -> str:
        kind = next(outcomes)
        if started is not None:
            started.set()
        if kind == "fail":
            raise LMServerError("500")
        await asyncio.sleep(0.05)
        return kind

    assert await hedged(attempt, 0.001, lambda: True, lambda: None) == "slow-ok"


def test_fault_draws_depend_on_seed_prompt_and_repetition_only() -> None:
    rates = FaultRates(rate_limit=0.3, server_error=0.2, hang=0.1)
    prompts = [f"prompt {i}" for i in range(200)]
    first = FaultPicker(rates, seed=4)
    forward = [first.pick(p, ()) for p in prompts]
    second = FaultPicker(rates, seed=4)
    backward = [second.pick(p, ()) for p in reversed(prompts)]
    assert forward == list(reversed(backward))
    shares = {kind: forward.count(kind) / len(forward) for kind in set(forward)}
    assert 0.15 < shares["rate_limit"] < 0.45
    # A retry of the same prompt is a fresh draw, not a replay of the fault.
    again = [first.pick(p, ()) for p in prompts]
    assert again != forward
    assert FaultPicker(rates, seed=5).pick("prompt 0", ()) in {*shares, "none"}


def test_fault_rates_validate_and_hang_on_named_tables() -> None:
    with pytest.raises(ValueError, match="add up"):
        FaultRates(rate_limit=0.7, server_error=0.4)
    with pytest.raises(ValueError, match="unknown"):
        FaultRates.from_mapping({"rate_limti": 0.1})
    picker = FaultPicker(FaultRates(hang_on_tables=("s.Slow",)), seed=0)
    assert picker.pick("x", ("s.fast", "s.slow")) == "hang"
    assert picker.pick("x", ("s.fast",)) == "none"


def test_tail_latency_has_the_asked_median_and_p99() -> None:
    latency = parse_latency("tail:100:1000")
    assert latency == Latency("tail", 100.0, 1000.0)
    rng = random.Random(0)
    draws = sorted(latency.draw_seconds(rng) * 1000 for _ in range(20_000))
    assert draws[10_000] == pytest.approx(100, rel=0.05)
    assert draws[19_800] == pytest.approx(1000, rel=0.15)
    with pytest.raises(ValueError, match="P50 <= P99"):
        parse_latency("tail:100:50")

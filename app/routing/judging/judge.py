"""The LM judge: one DSPy call per chunk, its reply turned into votes, and the one retry layer.

LM output is untrusted input: a table name that is not in the chunk is dropped and counted,
a table the reply leaves out counts as a vote against it, and a reply that does not parse is
retried once before the chunk counts as failed.

Retries are ours alone (DSPy's are off): 429, 5xx, connection errors and timeouts are retried
with jittered exponential backoff, never sooner than the provider's Retry-After, only while
the route's deadline leaves time for another call, and only within the backend's retry
budget. A slow call may be hedged (``app.routing.judging.hedging``). Every call passes the backend's
circuit breaker and its shared limiter; a cancelled call frees its slot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy import AdapterParseError

from app.llm.backend import LMBackend
from app.llm.chat_lm import ChatCompletionsLM
from app.llm.failures import Failure, classify
from app.observability.metrics import HEDGES, LM_CALLS, LM_RETRIES, LM_RETRIES_SKIPPED, LM_TOKENS
from app.routing.deadline import Deadline
from app.routing.judging.adapter import JudgeAdapter
from app.routing.judging.coverage import Coverage
from app.routing.judging.hedging import hedged
from app.routing.judging.signature import JudgeTables, TableVerdict
from app.routing.preparation.chunks import Chunk
from app.routing.ranking.merge import Vote

log = logging.getLogger(__name__)
PARSE_RETRIES = 1
# A table the LM did not mention is most likely one it found irrelevant.
OMITTED_CONFIDENCE = 0.9
DISTRUSTED_REASON = "its name reads as instructions to the LM: the LM's verdict is not trusted"
# The metric children every answered call updates, looked up once (labels() takes a lock).
_CALLS_OK = LM_CALLS.labels("ok")
_PROMPT_TOKENS = LM_TOKENS.labels("prompt")
_COMPLETION_TOKENS = LM_TOKENS.labels("completion")


class TableJudge(dspy.Module):
    """The DSPy program: judge one chunk of table cards against the question."""

    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict(JudgeTables)

    async def aforward(
        self, question: str, tables: str, config: dict[str, Any] | None = None
    ) -> dspy.Prediction:
        return await self.predict.acall(question=question, tables=tables, config=config or {})


@dataclass
class ChunkOutcome:
    """What one chunk's judging produced."""

    chunk: int
    votes: list[Vote] = field(default_factory=list)
    answered: bool = False
    failed: bool = False
    error: str | None = None
    dropped_names: int = 0
    lm_calls: int = 0
    retries: int = 0
    hedges: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False  # answered from the verdict cache, no LM call
    covered: bool = False  # failed, not retried: other chunks judged all its tables


def votes_from_verdicts(chunk: Chunk, verdicts: list[TableVerdict]) -> tuple[list[Vote], int]:
    """Votes for the chunk's tables; returns the votes and the count of names dropped.

    Only the chunk's own tables get votes: a name the LM was told by a comment (or invented)
    is dropped. A table whose name reads as instructions gets a vote against, whatever the LM says.
    """
    known = {name.lower(): name for name in chunk.names}
    seen: dict[str, Vote] = {}
    dropped = 0
    for verdict in verdicts:
        name = known.get(verdict.table.strip().strip('"`').lower())
        if name is None:
            dropped += 1
            continue
        if name in chunk.distrusted:
            seen.setdefault(name, Vote(name, False, OMITTED_CONFIDENCE, DISTRUSTED_REASON))
        elif name not in seen:
            seen[name] = Vote(name, verdict.relevant, verdict.confidence, verdict.reason[:200])
    for name in chunk.names:
        if name not in seen:
            reason = DISTRUSTED_REASON if name in chunk.distrusted else "not named in the LM's reply"
            seen[name] = Vote(name, False, OMITTED_CONFIDENCE, reason)
    return list(seen.values()), dropped


def _usage(prediction: dspy.Prediction) -> tuple[int, int]:
    usage: dict[str, Any] = prediction.get_lm_usage() or {}
    prompt = sum(int(u.get("prompt_tokens") or 0) for u in usage.values())
    completion = sum(int(u.get("completion_tokens") or 0) for u in usage.values())
    return prompt, completion


class LMJudge:
    """Judges chunks through one LM backend, every call under the backend's shared limiter."""

    def __init__(self, backend: LMBackend, timeout: float) -> None:
        self.backend = backend
        self.timeout = timeout
        self.program = TableJudge()
        self.adapter = JudgeAdapter()

    async def _ask(
        self, question: str, chunk: Chunk, config: dict[str, Any]
    ) -> tuple[list[TableVerdict], int, int]:
        """The verdicts of one LM call, and its prompt and completion tokens."""
        lm = self.backend.lm
        if isinstance(lm, ChatCompletionsLM):
            return await self._direct(lm, question, chunk)
        # History off: DSPy would keep every prompt of every route in memory.
        with dspy.context(lm=lm, adapter=self.adapter, track_usage=True, disable_history=True):
            prediction = await self.program.acall(question=question, tables=chunk.text, config=config)
        return prediction.verdicts, *_usage(prediction)

    async def _direct(
        self, lm: ChatCompletionsLM, question: str, chunk: Chunk
    ) -> tuple[list[TableVerdict], int, int]:
        """The program's predictor (signature, instructions, demos) through the adapter, minus Predict's
        per-call bookkeeping (callbacks, traces, settings scopes): the same prompt, the same parse."""
        predict = self.program.predict
        signature = predict.signature
        inputs = {"question": question, "tables": chunk.text}
        messages = self.adapter.messages(signature, predict.demos, inputs)
        text, usage = await lm.complete(messages, **predict.config)
        verdicts: list[TableVerdict] = self.adapter.parse(signature, text)["verdicts"]
        return verdicts, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)

    def _fresh(self, parse_retry: int) -> dict[str, Any]:
        """Call config that keeps a parse retry from DSPy's cache of the failed reply.

        The service's LM runs with the cache off, so every call is fresh already and no
        rollout_id is sent (DSPy warns about one at temperature 0).
        """
        return {"rollout_id": parse_retry} if parse_retry and getattr(self.backend.lm, "cache", False) else {}

    async def _attempt(
        self,
        question: str,
        chunk: Chunk,
        deadline: Deadline,
        outcome: ChunkOutcome,
        started: asyncio.Event | None,
        *,
        config: dict[str, Any],
    ) -> tuple[list[TableVerdict], int, int]:
        """One LM call: through the breaker and the limiter, within min(LLM_TIMEOUT, time left)."""
        reliability = self.backend.reliability
        probe = await reliability.breaker.admit()
        answered: bool | None = None  # None: no verdict on the backend's health
        failure = ""
        try:
            # The chunk's tokens are what a tokens-per-minute limit books for this call.
            async with self.backend.limiter.slot(chunk.tokens):
                if started is not None:
                    started.set()
                timeout = deadline.call_timeout(self.timeout)
                if timeout <= 0:
                    raise TimeoutError  # the deadline passed while this call queued
                outcome.lm_calls += 1
                reliability.note_call()
                begun = time.monotonic()
                try:
                    async with asyncio.timeout(timeout):
                        answer = await self._ask(question, chunk, config)
                except AdapterParseError:
                    answered = True
                    LM_CALLS.labels("unparseable").inc()
                    raise
                except TimeoutError:
                    LM_CALLS.labels("timeout").inc()
                    # Cut by the route's deadline rather than LLM_TIMEOUT: not the backend's fault.
                    answered = False if timeout >= self.timeout else None
                    failure = f"timed out after {timeout:.3g} s"
                    raise
                except Exception as exc:
                    verdict = self._classify(exc, timeout)
                    answered, failure = not verdict.backend_fault, verdict.reason
                    LM_CALLS.labels("unparseable" if verdict.parse else "error").inc()
                    raise
                reliability.latency.add(time.monotonic() - begun)
                _CALLS_OK.inc()
                answered = True
                return answer
        finally:
            if answered is None:
                if probe:
                    reliability.breaker.release_probe()
            else:
                reliability.breaker.record(ok=answered, probe=probe, failure=failure)

    def _classify(self, exc: BaseException, timeout: float) -> Failure:
        """``classify``, with secrets masked in the reason (it reaches answers, the route log, logs)."""
        failure = classify(exc, timeout)
        return dataclasses.replace(failure, reason=self.backend.redact(failure.reason))

    def _retry_refusal(
        self, failure: Failure, delay: float, retries: int, parse_retries: int, deadline: Deadline
    ) -> str:
        """Why this failure is not retried after ``delay`` seconds, or '' to retry."""
        reliability = self.backend.reliability
        if not failure.retryable:
            return "not retryable"
        if failure.parse and parse_retries >= PARSE_RETRIES:
            return "still unparseable"
        if not failure.parse and retries - parse_retries >= reliability.max_attempts - 1:
            return f"{reliability.max_attempts} attempts"
        usual = reliability.latency.quantile(0.5) or 0.0
        if delay + usual >= deadline.remaining():
            return "no time left before the deadline"
        if not reliability.retry_budget.try_spend():
            return "retry budget spent"
        return ""

    async def judge(
        self,
        question: str,
        chunk: Chunk,
        deadline: Deadline,
        outcome: ChunkOutcome,
        coverage: Coverage | None = None,
    ) -> None:
        """Judge one chunk into ``outcome`` (filled as calls go, so a cancelled chunk still counts).

        With ``coverage`` (the route's other chunks), a failed call is retried only when some of
        the chunk's tables cannot be judged by another chunk.
        """
        reliability = self.backend.reliability
        parse_retries = 0
        while True:
            timeout = deadline.call_timeout(self.timeout)
            attempt = functools.partial(
                self._attempt, question, chunk, deadline, outcome, config=self._fresh(parse_retries)
            )

            def hedge() -> None:
                outcome.hedges += 1
                HEDGES.labels("sent").inc()

            try:
                verdicts, prompt, completion = await hedged(
                    attempt,
                    reliability.hedge_delay_s(),
                    lambda: reliability.may_hedge(self.backend.limiter),
                    hedge,
                )
            except Exception as exc:  # any LM or transport failure fails this attempt only
                failure = self._classify(exc, timeout)
            else:
                outcome.prompt_tokens += prompt
                outcome.completion_tokens += completion
                _PROMPT_TOKENS.inc(prompt)
                _COMPLETION_TOKENS.inc(completion)
                outcome.votes, outcome.dropped_names = votes_from_verdicts(chunk, verdicts)
                outcome.answered, outcome.error = True, None
                return
            if failure.retryable and coverage is not None and not await coverage.needed(chunk.index):
                outcome.failed = outcome.covered = True
                outcome.error = f"{failure.reason} (not retried: other chunks judged all its tables)"
                LM_RETRIES_SKIPPED.inc()
                log.debug("chunk %d failed: %s", chunk.index, outcome.error)
                return
            delay = reliability.retry_delay_s(outcome.retries, failure)
            refusal = self._retry_refusal(failure, delay, outcome.retries, parse_retries, deadline)
            if refusal:
                outcome.failed, outcome.error = True, f"{failure.reason} ({refusal})"
                log.debug("chunk %d failed: %s", chunk.index, outcome.error)
                return
            outcome.retries += 1
            LM_RETRIES.labels("unparseable" if failure.parse else "transient").inc()
            parse_retries += failure.parse
            await asyncio.sleep(delay)

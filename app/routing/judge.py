"""The LM judge: one DSPy call per chunk, its reply turned into votes.

LM output is untrusted input: a table name that is not in the chunk is dropped and counted,
a table the reply leaves out counts as a vote against it, and a reply that does not parse is
retried once before the chunk counts as failed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError

from app.llm.backend import LMBackend
from app.observability.metrics import LM_CALLS, LM_RETRIES, LM_TOKENS
from app.routing.chunks import Chunk
from app.routing.judge_adapter import JudgeAdapter
from app.routing.judge_signature import JudgeTables, TableVerdict
from app.routing.merge import Vote

log = logging.getLogger(__name__)
PARSE_ATTEMPTS = 2
# A table the LM did not mention is most likely one it found irrelevant.
OMITTED_CONFIDENCE = 0.9


class TableJudge(dspy.Module):
    """The DSPy program: judge one chunk of table cards against the question."""

    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict(JudgeTables)

    async def aforward(self, question: str, tables: str) -> dspy.Prediction:
        return await self.predict.acall(question=question, tables=tables)


@dataclass
class ChunkOutcome:
    """What one chunk's judging produced."""

    chunk: int
    votes: list[Vote] = field(default_factory=list)
    failed: bool = False
    error: str | None = None
    dropped_names: int = 0
    lm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def votes_from_verdicts(chunk: Chunk, verdicts: list[TableVerdict]) -> tuple[list[Vote], int]:
    """Votes for the chunk's tables; returns the votes and the count of names dropped."""
    known = {name.lower(): name for name in chunk.names}
    seen: dict[str, Vote] = {}
    dropped = 0
    for verdict in verdicts:
        name = known.get(verdict.table.strip().strip('"`').lower())
        if name is None:
            dropped += 1
            continue
        if name not in seen:
            seen[name] = Vote(name, verdict.relevant, verdict.confidence, verdict.reason[:200])
    for name in chunk.names:
        if name not in seen:
            seen[name] = Vote(name, False, OMITTED_CONFIDENCE, "not named in the LM's reply")
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

    async def _call(self, question: str, chunk: Chunk) -> dspy.Prediction:
        # DSPy's response cache is off for the service, so a retry after a parse failure is
        # a fresh request and needs no rollout_id to bypass a cached bad reply.
        # The chunk's tokens are what a tokens-per-minute limit books for this call.
        async with self.backend.limiter.slot(chunk.tokens), asyncio.timeout(self.timeout):
            # History off: DSPy would keep every prompt of every route in memory.
            with dspy.context(
                lm=self.backend.lm, adapter=self.adapter, track_usage=True, disable_history=True
            ):
                return await self.program.acall(question=question, tables=chunk.text)

    async def judge(self, question: str, chunk: Chunk) -> ChunkOutcome:
        """Judge one chunk; never raises except on cancellation."""
        outcome = ChunkOutcome(chunk.index)
        for attempt in range(PARSE_ATTEMPTS):
            outcome.lm_calls += 1
            if attempt:
                LM_RETRIES.labels("unparseable").inc()
            try:
                prediction = await self._call(question, chunk)
            except AdapterParseError:
                LM_CALLS.labels("unparseable").inc()
                outcome.error = "unparseable reply"
                continue
            except TimeoutError:
                LM_CALLS.labels("timeout").inc()
                outcome.error = f"timed out after {self.timeout:g} s"
                break
            except Exception as exc:  # any LM or transport failure fails this chunk only
                LM_CALLS.labels("error").inc()
                outcome.error = f"{type(exc).__name__}: {str(exc)[:200]}"
                break
            LM_CALLS.labels("ok").inc()
            prompt, completion = _usage(prediction)
            LM_TOKENS.labels("prompt").inc(prompt)
            LM_TOKENS.labels("completion").inc(completion)
            outcome.prompt_tokens += prompt
            outcome.completion_tokens += completion
            outcome.votes, outcome.dropped_names = votes_from_verdicts(chunk, prediction.verdicts)
            outcome.error = None
            return outcome
        outcome.failed = True
        log.warning("chunk %d failed: %s", chunk.index, outcome.error)
        return outcome

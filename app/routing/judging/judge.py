"""The LM judge: the DSPy program, and one chunk judged by it into votes.

One call asks the program about one chunk (``LMJudge._ask``; for the lean chat-completions LM,
``_direct`` runs the same predictor without Predict's per-call bookkeeping). When to call,
retry and hedge is ``app.routing.judging.attempts``; how a reply becomes votes (untrusted
input: unknown names dropped, omitted tables voted against) is ``app.routing.judging.votes``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import dspy

from app.llm.backend import LMBackend
from app.llm.cache_hints import CacheHint, cache_key
from app.llm.chat_lm import ChatCompletionsLM, cached_prompt_tokens
from app.observability.metrics import LM_TOKENS
from app.routing.deadline import Deadline
from app.routing.judging.adapter import JudgeAdapter
from app.routing.judging.attempts import ChunkAttempts
from app.routing.judging.coverage import Coverage
from app.routing.judging.outcome import ChunkOutcome
from app.routing.judging.signature import JUDGE_FORMATS, JudgeFormat, TableVerdict, as_verdicts
from app.routing.judging.votes import votes_from_verdicts
from app.routing.preparation.chunks import Chunk

# The metric children every answered call updates, looked up once (labels() takes a lock).
_PROMPT_TOKENS = LM_TOKENS.labels("prompt")
_COMPLETION_TOKENS = LM_TOKENS.labels("completion")
_CACHED_PROMPT_TOKENS = LM_TOKENS.labels("cached_prompt")


@dataclass(frozen=True, slots=True)
class Answer:
    """One LM call's verdicts and the tokens it took."""

    verdicts: list[TableVerdict]
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int = 0


class TableJudge(dspy.Module):
    """The DSPy program: judge one chunk of table cards against the question."""

    def __init__(self, judge_format: JudgeFormat = "short") -> None:
        super().__init__()
        signature, self.output_field, _ = JUDGE_FORMATS[judge_format]
        self.predict = dspy.Predict(signature)

    async def aforward(
        self, question: str, tables: str, config: dict[str, Any] | None = None
    ) -> dspy.Prediction:
        return await self.predict.acall(tables=tables, question=question, config=config or {})


def _usage(prediction: dspy.Prediction) -> tuple[int, int, int]:
    usage: dict[str, Any] = prediction.get_lm_usage() or {}
    prompt = sum(int(u.get("prompt_tokens") or 0) for u in usage.values())
    completion = sum(int(u.get("completion_tokens") or 0) for u in usage.values())
    cached = sum(cached_prompt_tokens(u) for u in usage.values())
    return prompt, completion, cached


class LMJudge:
    """Judges chunks through one LM backend, every call under the backend's shared limiter."""

    def __init__(
        self,
        backend: LMBackend,
        timeout: float,
        judge_format: JudgeFormat = "short",
        cache_hint: CacheHint = "off",
    ) -> None:
        self.backend = backend
        self.timeout = timeout
        self.judge_format = judge_format
        self.cache_hint = cache_hint
        self.program = TableJudge(judge_format)
        self.adapter = JudgeAdapter(cache_breakpoint=cache_hint == "cache_control")

    def _hinted(self, chunk: Chunk, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` with the chunk's prompt-cache key, when the provider takes one."""
        if self.cache_hint != "prompt_cache_key":
            return config
        return {**config, "prompt_cache_key": cache_key(chunk.digest)}

    async def _ask(self, question: str, chunk: Chunk, config: dict[str, Any]) -> Answer:
        """The verdicts of one LM call, and its prompt and completion tokens."""
        lm = self.backend.lm
        if isinstance(lm, ChatCompletionsLM):
            return await self._direct(lm, question, chunk)
        # History off: DSPy would keep every prompt of every route in memory.
        with dspy.context(lm=lm, adapter=self.adapter, track_usage=True, disable_history=True):
            prediction = await self.program.acall(
                question=question, tables=chunk.text, config=self._hinted(chunk, config)
            )
        return Answer(as_verdicts(prediction[self.program.output_field]), *_usage(prediction))

    async def _direct(self, lm: ChatCompletionsLM, question: str, chunk: Chunk) -> Answer:
        """The program's predictor (signature, instructions, demos) through the adapter, minus Predict's
        per-call bookkeeping (callbacks, traces, settings scopes): the same prompt, the same parse."""
        predict = self.program.predict
        signature = predict.signature
        # The adapter lays the fields out in the signature's order: the cards, then the question.
        inputs = {"tables": chunk.text, "question": question}
        messages = self.adapter.messages(signature, predict.demos, inputs)
        text, usage = await lm.complete(messages, **self._hinted(chunk, predict.config))
        reply = self.adapter.parse(signature, text)[self.program.output_field]
        return Answer(
            as_verdicts(reply),
            usage.get("prompt_tokens", 0),
            usage.get("completion_tokens", 0),
            usage.get("cached_prompt_tokens", 0),
        )

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
        attempts = ChunkAttempts(self.backend, self.timeout, chunk, deadline, outcome)
        answer = await attempts.run(functools.partial(self._ask, question, chunk), coverage)
        if answer is None:
            return
        outcome.prompt_tokens += answer.prompt_tokens
        outcome.completion_tokens += answer.completion_tokens
        outcome.cached_prompt_tokens += answer.cached_prompt_tokens
        _PROMPT_TOKENS.inc(answer.prompt_tokens)
        _COMPLETION_TOKENS.inc(answer.completion_tokens)
        _CACHED_PROMPT_TOKENS.inc(answer.cached_prompt_tokens)
        outcome.votes, outcome.dropped_names = votes_from_verdicts(chunk, answer.verdicts)
        outcome.answered, outcome.error = True, None

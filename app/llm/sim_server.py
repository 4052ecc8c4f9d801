"""The LM simulator's HTTP endpoints and counters (the app is built in ``app.llm.simulator``)."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.llm.sim_latency import Latency
from app.llm.sim_policy import Policy
from app.llm.sim_protocol import Verdict, format_reply, message_text, parse_prompt

__all__ = ["SimulatorEndpoints", "SimulatorStats"]

CHARS_PER_TOKEN = 4


@dataclass(slots=True)
class SimulatorStats:
    """Counters since start or the last reset; ``in_flight`` is a gauge and survives resets."""

    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def arrive(self) -> None:
        """Count one call entering the server."""
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def reset(self) -> None:
        """Zero the counters; calls still in flight stay counted as in flight."""
        self.calls = self.prompt_tokens = self.completion_tokens = 0
        self.max_in_flight = self.in_flight


def _tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _error(status: HTTPStatus, message: str) -> JSONResponse:
    """An error in OpenAI's shape, which OpenAI clients know how to read."""
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return JSONResponse(body, status_code=status)


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _sleep_unless_disconnected(request: Request, seconds: float) -> bool:
    """Sleep ``seconds``; True if the client went away first."""
    sleeper = asyncio.ensure_future(asyncio.sleep(seconds))
    watcher = asyncio.ensure_future(_until_disconnect(request))
    try:
        done, _ = await asyncio.wait({sleeper, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        watcher.cancel()
    return watcher in done


class SimulatorEndpoints:
    """The endpoints, over one policy, one latency distribution and one set of counters."""

    def __init__(self, policy: Policy, latency: Latency, seed: int, model_name: str) -> None:
        self.policy = policy
        self.latency = latency
        self.rng = random.Random(seed)  # only latency draws depend on call order
        self.model_name = model_name
        self.stats = SimulatorStats()

    def _completion(self, messages: Sequence[Any], verdicts: list[Verdict]) -> dict[str, Any]:
        content = format_reply(verdicts)
        prompt_tokens = _tokens("\n".join(message_text(m) for m in messages))
        completion_tokens = _tokens(content)
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        return {
            "id": f"chatcmpl-sim-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    async def chat_completions(self, request: Request) -> Response:
        """``POST /v1/chat/completions``: the judge's verdicts after a simulated delay."""
        self.stats.arrive()
        try:
            try:
                body = json.loads(await request.body())
            except ValueError:
                return _error(HTTPStatus.BAD_REQUEST, "the request body is not valid JSON")
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                return _error(HTTPStatus.BAD_REQUEST, "the request needs a 'messages' list")
            if body.get("stream"):
                return _error(HTTPStatus.BAD_REQUEST, "the simulator does not stream; send stream=false")
            delay = self.latency.draw_seconds(self.rng)
            if delay > 0 and await _sleep_unless_disconnected(request, delay):
                return Response(status_code=HTTPStatus.NO_CONTENT)  # nobody is listening
            prompt = parse_prompt(body["messages"])
            verdicts = self.policy.judge(prompt) if prompt is not None else []
            return JSONResponse(self._completion(body["messages"], verdicts))
        finally:
            self.stats.in_flight -= 1

    async def models(self, request: Request) -> Response:
        """``GET /v1/models``: the one simulated model."""
        model = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "tablerouter"}
        return JSONResponse({"object": "list", "data": [model]})

    async def get_stats(self, request: Request) -> Response:
        """``GET /stats``: the counters."""
        return JSONResponse(asdict(self.stats))

    async def reset_stats(self, request: Request) -> Response:
        """``POST /stats/reset``: zero the counters."""
        self.stats.reset()
        return JSONResponse(asdict(self.stats))

    async def healthz(self, request: Request) -> Response:
        """``GET /healthz``: alive."""
        return JSONResponse({"status": "ok"})

"""The LM simulator's HTTP endpoints and counters (the app is built in ``app.simulator.service``)."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.simulator.costs import CallCost, CostMeter
from app.simulator.faults import FaultKind, FaultPicker, FaultRates
from app.simulator.latency import Latency
from app.simulator.policy import Policy
from app.simulator.protocol import ReplyField, Verdict, format_reply, message_text, parse_prompt, reply_field

__all__ = ["LATENCY_HEADER", "TRANSPORT_KEY", "SimulatorEndpoints", "SimulatorStats"]

# Prompts kept for GET /prompts: what the LM was shown (tests check what never reached it).
PROMPTS_KEPT = 4096
# Where the simulator's app puts the connection's transport in the ASGI scope (reset faults).
TRANSPORT_KEY = "tablerouter.sim.transport"
# The response header carrying the latency the simulator meant the call to take, in ms.
LATENCY_HEADER = "x-sim-latency-ms"


@dataclass(slots=True)
class SimulatorStats:
    """Counters since start or the last reset; ``in_flight`` is a gauge and survives resets."""

    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    # The latencies the answered calls were given (token model + drawn), summed, in ms.
    latency_ms: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)

    def arrive(self) -> None:
        """Count one call entering the server."""
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def answered(self, cost: CallCost, latency_ms: float) -> None:
        """Count the tokens and latency of one call whose reply was sent."""
        self.prompt_tokens += cost.prompt_tokens
        self.cached_prompt_tokens += cost.cached_tokens
        self.completion_tokens += cost.completion_tokens
        self.latency_ms += latency_ms

    def reset(self) -> None:
        """Zero the counters; calls still in flight stay counted as in flight."""
        self.calls = self.prompt_tokens = self.cached_prompt_tokens = self.completion_tokens = 0
        self.latency_ms = 0.0
        self.max_in_flight = self.in_flight
        self.faults = {}


def _error(
    status: HTTPStatus,
    message: str,
    kind: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error in OpenAI's shape, which OpenAI clients know how to read."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def _rate_limited(retry_after_s: float) -> JSONResponse:
    headers = {"Retry-After": f"{retry_after_s:g}", "retry-after-ms": str(round(retry_after_s * 1000))}
    return _error(HTTPStatus.TOO_MANY_REQUESTS, "rate limit reached (simulated)", "rate_limit_error", headers)


async def _reset_connection(request: Request) -> Response:
    """Drop the TCP connection with a RST, as a crashed proxy does; no response byte is sent."""
    transport = request.scope.get(TRANSPORT_KEY)
    if transport is None:  # not served by uvicorn (an in-process ASGI client): the nearest thing
        return _error(HTTPStatus.BAD_GATEWAY, "connection reset (simulated)", "server_error")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0 turns the close into a RST instead of an orderly FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await asyncio.sleep(0)  # let the server see the connection lost, so it sends nothing
    return Response(status_code=HTTPStatus.NO_CONTENT)


def _spoiled(content: str, fault: FaultKind, reply: ReplyField) -> str:
    """The reply content as a truncated or malformed fault spoils it."""
    if fault == "truncated":
        # Cut inside the reply's JSON list, as max_tokens cuts a reply: half of the whole content
        # could leave a short reply's list ("[]") whole, and that is not a truncated answer.
        start = content.find("[", content.find("## ]]") + 5)
        end = content.rfind("]", start) if start >= 0 else -1
        if end <= start:
            return content[: max(1, len(content) // 2)]
        return content[: start + max(1, (end - start) // 2)]
    # The format ignored: prose where the JSON list belongs, as small models sometimes answer.
    return f"[[ ## {reply} ## ]]\nThe relevant tables are probably the first ones.\n\n[[ ## completed ## ]]"


def _invented(verdicts: list[Verdict], seed: int) -> list[Verdict]:
    """The verdicts plus tables the chunk does not hold, named like its own tables."""
    schema = verdicts[0].table.rsplit(".", 1)[0] + "." if verdicts and "." in verdicts[0].table else ""
    ghosts = [Verdict(f"{schema}ghost_table_{seed}_{i}", True, 0.9, "looks right") for i in range(2)]
    return [*verdicts, *ghosts]


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

    def __init__(
        self,
        policy: Policy,
        latency: Latency,
        seed: int,
        model_name: str,
        faults: FaultRates | None = None,
        *,
        api_key: str | None = None,
        meter: CostMeter | None = None,
    ) -> None:
        self.api_key = api_key
        self.meter = meter or CostMeter()
        self.policy = policy
        self.latency = latency
        self.rng = random.Random(seed)  # only latency draws depend on call order
        self.model_name = model_name
        self.seed = seed
        self.faults = FaultPicker(faults or FaultRates(), seed)
        self.stats = SimulatorStats()
        self.prompts: deque[str] = deque(maxlen=PROMPTS_KEPT)
        # The prompt-cache hints each of those requests carried (OpenAI's key, Anthropic's breakpoints).
        self.hints: deque[dict[str, Any]] = deque(maxlen=PROMPTS_KEPT)

    def _completion(
        self, model: str, texts: list[str], verdicts: list[Verdict], fault: FaultKind, reply: ReplyField
    ) -> tuple[dict[str, Any], CallCost]:
        if fault == "invented":
            verdicts = _invented(verdicts, self.seed)
        content = format_reply(verdicts, reply)
        if fault in ("truncated", "malformed"):
            content = _spoiled(content, fault, reply)
        cost = self.meter.cost(model, texts, content)
        usage: dict[str, Any] = {
            "prompt_tokens": cost.prompt_tokens,
            "completion_tokens": cost.completion_tokens,
            "total_tokens": cost.prompt_tokens + cost.completion_tokens,
        }
        if self.meter.cache is not None:  # reported as OpenAI, DeepSeek and vLLM report it
            usage["prompt_tokens_details"] = {"cached_tokens": cost.cached_tokens}
        completion = {
            "id": f"chatcmpl-sim-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "length" if fault == "truncated" else "stop",
                }
            ],
            "usage": usage,
        }
        return completion, cost

    async def chat_completions(self, request: Request) -> Response:
        """``POST /v1/chat/completions``: the judge's verdicts, a simulated delay after arrival."""
        arrived = time.monotonic()
        self.stats.arrive()
        try:
            # Requests that arrived together are all stamped before any is worked on, so the
            # simulator's own CPU does not push a burst's later calls past their latency.
            await asyncio.sleep(0)
            refused = self._refused(request)
            if refused is not None:
                return refused
            try:
                body = orjson.loads(await request.body())
            except ValueError:
                return _error(HTTPStatus.BAD_REQUEST, "the request body is not valid JSON")
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                return _error(HTTPStatus.BAD_REQUEST, "the request needs a 'messages' list")
            if body.get("stream"):
                return _error(HTTPStatus.BAD_REQUEST, "the simulator does not stream; send stream=false")
            model = body.get("model")
            model_name = model if isinstance(model, str) and model else self.model_name
            self.hints.append(_hints(body))
            return await self._answer(request, body["messages"], model_name, arrived)
        finally:
            self.stats.in_flight -= 1

    def _refused(self, request: Request) -> Response | None:
        """401 when a key is required and another was sent; the message echoes the key sent in
        full, as a careless provider's does, so a client's handling of it can be tested."""
        if self.api_key is None:
            return None
        sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if sent == self.api_key:
            return None
        message = f"Incorrect API key provided: {sent}. You can find your API key in your account."
        return _error(HTTPStatus.UNAUTHORIZED, message, "invalid_api_key")

    async def _answer(
        self, request: Request, messages: Sequence[Any], model: str, arrived: float
    ) -> Response:
        """The reply to a well-formed request: a fault, or the verdicts ``latency`` after ``arrived``.

        The latency is a draw of the fixed distribution plus the token model's price of the call
        (``app.simulator.costs``); the prefix cache is keyed by the model the request names.

        The reply is built before the wait: the latency is the model's, from the request's
        arrival to its answer, and the simulator's own work happens inside it (a real endpoint's
        CPU is not on its client's machine; this one's is, so it must not add to every call).
        """
        prompt = parse_prompt(messages)
        texts = [message_text(m) for m in messages]
        prompt_text = "\n".join(texts)
        self.prompts.append(prompt_text)
        fault = self.faults.pick(prompt_text, tuple(t.name for t in prompt.tables) if prompt else ())
        if fault != "none":
            self.stats.faults[fault] = self.stats.faults.get(fault, 0) + 1
        # A rate limiter or a failing gateway answers at once; only the model takes its time.
        if fault == "rate_limit":
            return _rate_limited(self.faults.rates.retry_after_s)
        if fault == "server_error":
            return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (simulated)", "server_error")
        if fault == "reset":
            return await _reset_connection(request)
        verdicts = self.policy.judge(prompt) if prompt is not None else []
        completion, cost = self._completion(model, texts, verdicts, fault, reply_field(messages))
        if fault == "hang":
            delay = self.faults.rates.hang_s
        else:
            delay = self.latency.draw_seconds(self.rng) + cost.latency_ms / 1000.0
        body = orjson.dumps(completion)
        wait = arrived + delay - time.monotonic()
        if wait > 0 and await _sleep_unless_disconnected(request, wait):
            return Response(status_code=HTTPStatus.NO_CONTENT)  # nobody is listening
        self.stats.answered(cost, delay * 1000.0)
        headers = {LATENCY_HEADER: f"{delay * 1000.0:.3f}"}
        return Response(body, media_type="application/json", headers=headers)

    async def models(self, request: Request) -> Response:
        """``GET /v1/models``: the one simulated model."""
        model = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "tablerouter"}
        return JSONResponse({"object": "list", "data": [model]})

    async def get_stats(self, request: Request) -> Response:
        """``GET /stats``: the counters."""
        return JSONResponse(asdict(self.stats))

    async def get_faults(self, request: Request) -> Response:
        """``GET /faults``: the fault rates in force."""
        return JSONResponse(asdict(self.faults.rates))

    async def set_faults(self, request: Request) -> Response:
        """``POST /faults``: replace the fault rates (an outage now, a recovery later); 400 if invalid."""
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object of fault settings")
            rates = FaultRates.from_mapping(body)
        except ValueError as exc:
            return _error(HTTPStatus.BAD_REQUEST, str(exc))
        self.faults = FaultPicker(rates, self.seed)
        return JSONResponse(asdict(rates))

    async def get_prompts(self, request: Request) -> Response:
        """``GET /prompts``: the text of the latest prompts received (at most PROMPTS_KEPT), oldest first."""
        return JSONResponse({"prompts": list(self.prompts), "hints": list(self.hints)})

    async def reset_stats(self, request: Request) -> Response:
        """``POST /stats/reset``: zero the counters and forget the prompts."""
        self.stats.reset()
        self.prompts.clear()
        self.hints.clear()
        return JSONResponse(asdict(self.stats))

    async def healthz(self, request: Request) -> Response:
        """``GET /healthz``: alive."""
        return JSONResponse({"status": "ok"})


def _hints(body: dict[str, Any]) -> dict[str, Any]:
    """The prompt-cache hints of a request: its ``prompt_cache_key`` and its ``cache_control`` parts."""
    key = body.get("prompt_cache_key")
    marked = sum(
        1
        for message in body["messages"]
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and isinstance(part.get("cache_control"), dict)
    )
    return {"prompt_cache_key": key if isinstance(key, str) else None, "cache_control_parts": marked}

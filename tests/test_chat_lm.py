"""The lean chat-completions LM and the simulator's embeddings, over real sockets."""

from __future__ import annotations

import base64

import dspy
import httpx
import numpy as np
import pytest

from app.harness.forward_proxy import running_forward_proxy
from app.llm.backend import build_backend
from app.llm.chat_lm import ChatCompletionsLM, LMHTTPError, LMReplyError, _reply_text
from app.llm.failures import classify
from app.llm.http1 import HTTPConnectionError
from app.routing.judging.judge import TableJudge
from app.settings import Settings
from app.simulator.service import SimulatorConfig, running_simulator

CARDS = '### s.orders "one row per order"\n- id integer PK\n\n### s.customers\n- id integer PK'


def _lm(api_base: str) -> ChatCompletionsLM:
    return ChatCompletionsLM(
        "openai/tablerouter-sim", api_base=api_base, api_key="k", timeout=5, max_connections=4
    )


async def test_the_program_runs_on_it_as_a_dspy_lm_with_usage() -> None:
    async with running_simulator(SimulatorConfig(port=0)) as url:
        lm = _lm(f"{url}/v1")
        try:
            with dspy.context(lm=lm, track_usage=True, disable_history=True):
                prediction = await TableJudge().acall(question="How many orders?", tables=CARDS)
        finally:
            await lm.aclose()
    # The short reply names only the table the question needs.
    _, confidence, reason = prediction.relevant[0].split(" | ")
    assert [entry.split(" | ")[0] for entry in prediction.relevant] == ["s.orders"]
    assert 0 < float(confidence) <= 1
    assert reason
    usage = prediction.get_lm_usage()["openai/tablerouter-sim"]
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] > 0


async def test_the_old_format_gives_a_verdict_for_every_table() -> None:
    async with running_simulator(SimulatorConfig(port=0)) as url:
        lm = _lm(f"{url}/v1")
        try:
            with dspy.context(lm=lm, track_usage=True, disable_history=True):
                prediction = await TableJudge("verdicts").acall(question="How many orders?", tables=CARDS)
        finally:
            await lm.aclose()
    assert [v.table for v in prediction.verdicts] == ["s.orders", "s.customers"]
    assert [v.relevant for v in prediction.verdicts] == [True, False]


async def test_http_errors_and_non_completions_raise() -> None:
    async with running_simulator(SimulatorConfig(port=0)) as url:
        lm = _lm(url)  # no /v1: the simulator answers 404
        try:
            with pytest.raises(LMHTTPError, match="HTTP 404"):
                await lm.complete([{"role": "user", "content": "hi"}])
        finally:
            await lm.aclose()
    for body in (b"not json", b'{"choices": []}', b'{"choices": [{"message": {"content": null}}]}'):
        with pytest.raises(LMReplyError):
            _reply_text(body)
    text, usage = _reply_text(b'{"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 3}}')
    assert (text, usage) == ("x", {"prompt_tokens": 3})


async def test_calls_go_through_the_proxy_the_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    async with (
        running_simulator(SimulatorConfig(port=0)) as url,
        running_forward_proxy() as (proxy_url, proxy),
    ):
        for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", proxy_url)
        backend = build_backend(Settings(llm_model="openai/tablerouter-sim", llm_api_base=f"{url}/v1"))
        assert backend is not None
        assert isinstance(backend.lm, ChatCompletionsLM)
        try:
            with dspy.context(lm=backend.lm, track_usage=True, disable_history=True):
                for _ in range(2):
                    prediction = await TableJudge().acall(question="How many orders?", tables=CARDS)
        finally:
            await backend.aclose()
        lost = ChatCompletionsLM(  # no /v1: the simulator answers 404, through the proxy too
            "openai/m", api_base=url, api_key=None, timeout=5, max_connections=2, proxy=proxy_url
        )
        try:
            with pytest.raises(LMHTTPError, match="HTTP 404"):
                await lost.complete([{"role": "user", "content": "hi"}])
        finally:
            await lost.aclose()
    assert [entry.split(" | ")[0] for entry in prediction.relevant] == ["s.orders"]
    assert proxy.requests == 3
    assert proxy.connections == 2  # kept alive through the proxy: one per LM


async def test_a_proxy_that_cannot_be_reached_is_a_retryable_connection_failure() -> None:
    lm = ChatCompletionsLM(
        "openai/m",
        api_base="http://127.0.0.1:9/v1",
        api_key=None,
        timeout=5,
        max_connections=2,
        proxy="http://127.0.0.1:1",
    )
    try:
        with pytest.raises(HTTPConnectionError) as raised:
            await lm.complete([{"role": "user", "content": "hi"}])
    finally:
        await lm.aclose()
    failure = classify(raised.value, 5)
    assert failure.retryable
    assert failure.backend_fault


async def test_simulator_embeddings_are_deterministic_unit_vectors() -> None:
    async with running_simulator(SimulatorConfig(port=0)) as url, httpx.AsyncClient(base_url=url) as c:
        texts = ["sales orders per customer", "customer orders", "payroll of employees"]
        body = (await c.post("/v1/embeddings", json={"model": "m", "input": texts})).json()
        again = (await c.post("/v1/embeddings", json={"model": "m", "input": texts})).json()
        packed = await c.post("/v1/embeddings", json={"input": texts[0], "encoding_format": "base64"})
        bad = await c.post("/v1/embeddings", json={"input": [1, 2]})
        small = await c.post("/v1/embeddings", json={"input": "x y", "dimensions": 8})
    vectors = np.array([d["embedding"] for d in body["data"]])
    assert body == again
    assert vectors.shape == (3, 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    decoded = np.frombuffer(base64.b64decode(packed.json()["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, vectors[0])
    assert bad.status_code == 400
    assert len(small.json()["data"][0]["embedding"]) == 8

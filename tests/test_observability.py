"""Metrics at /metrics, JSON logs carrying the route id, and the optional OpenTelemetry hook."""

from __future__ import annotations

import importlib
import io
import json
import logging
import logging.config
import re

import pytest

from app.harness.service import service_client
from app.observability.logs import JsonFormatter, RouteIdFilter, logging_config
from app.settings import Settings
from app.simulator.launcher import free_port
from app.simulator.service import SimulatorConfig, running_simulator


def _metric(body: str, name: str) -> float:
    for line in body.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


async def test_metrics_count_routes_and_lm_calls(tmp_path: pytest.TempPathFactory) -> None:
    async with running_simulator(SimulatorConfig(port=0)) as sim_url:
        settings = Settings.model_validate(
            {
                "llm_model": "openai/tablerouter-sim",
                "llm_api_base": f"{sim_url}/v1",
                "demo_warehouse_path": f"{tmp_path}/demo.db",
                "chunk_tokens": 1000,
            }
        )
        async with service_client(settings) as client:
            before = (await client.get("/metrics")).text
            routed = await client.post("/route", json={"question": "orders per customer"})
            after = await client.get("/metrics")
    assert routed.status_code == 200
    assert after.headers["content-type"].startswith("text/plain")
    body = after.text
    ok = 'tablerouter_routes_total{outcome="ok"}'
    assert _metric(body, ok) == _metric(before, ok) + 1
    calls = 'tablerouter_lm_calls_total{outcome="ok"}'
    assert _metric(body, calls) - _metric(before, calls) == routed.json()["stats"]["lm_calls"]
    assert _metric(body, "tablerouter_route_duration_seconds_count") >= 1
    assert _metric(body, "tablerouter_limiter_wait_seconds_count") >= routed.json()["stats"]["lm_calls"]
    assert "tablerouter_lm_in_flight 0.0" in body


async def test_metrics_can_be_switched_off(tmp_path: pytest.TempPathFactory) -> None:
    settings = Settings.model_validate({"metrics_enabled": False, "demo_warehouse_path": f"{tmp_path}/d.db"})
    async with service_client(settings) as client:
        assert (await client.get("/metrics")).status_code == 404


async def test_json_logs_carry_the_route_id(tmp_path: pytest.TempPathFactory) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RouteIdFilter())
    judge_log = logging.getLogger("app.routing")
    judge_log.addHandler(handler)
    # An LM that refuses every connection: the route logs its failed chunks, then answers lexically.
    settings = Settings.model_validate(
        {
            "llm_model": "openai/nowhere",
            "llm_api_base": f"http://127.0.0.1:{free_port()}/v1",
            "demo_warehouse_path": f"{tmp_path}/demo.db",
            "chunk_tokens": 1000,
        }
    )
    try:
        async with service_client(settings) as client:
            response = await client.post("/route", json={"question": "orders per customer"})
    finally:
        judge_log.removeHandler(handler)
    assert response.status_code == 200
    assert response.json()["degraded"] is True
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) >= 1
    ids = {line["route_id"] for line in lines}
    assert len(ids) == 1
    route_id = ids.pop()
    assert re.fullmatch(r"[0-9a-f]{32}", route_id)
    assert route_id == response.json()["route_id"]
    assert {"time", "level", "logger", "message"} <= set(lines[0])


def test_logging_config_is_a_valid_dict_config() -> None:
    for fmt in ("text", "json"):
        config = logging_config(fmt, "info")
        logging.config.dictConfig({**config, "root": {"level": "WARNING", "handlers": []}})
    assert config["formatters"]["main"]["()"] is JsonFormatter


async def test_otel_hook_without_the_extra_serves_and_says_so(
    tmp_path: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        importlib.import_module("opentelemetry.instrumentation.fastapi")
    except ImportError:
        installed = False
    else:
        installed = True
    settings = Settings.model_validate({"otel_enabled": True, "demo_warehouse_path": f"{tmp_path}/d.db"})
    with caplog.at_level(logging.WARNING, logger="app.observability.tracing"):
        async with service_client(settings) as client:
            assert (await client.get("/healthz")).status_code == 200
    warned = "otel extra is not installed" in caplog.text
    assert warned is not installed

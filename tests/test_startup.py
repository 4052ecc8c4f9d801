"""A lexical service's start-up: no DSPy, LiteLLM, Redis client, sqlglot or MCP SDK; each phase logged."""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager

from app.harness.service import service_client
from app.main import app_from_environment
from app.settings import get_settings
from tests.fixtures.settings import SettingsBuilder

# Creates the app with no LM configured, runs its lifespan (store, demo source, router) and
# routes one question, then names the heavy modules the process holds.
LEXICAL_SERVICE = """
import asyncio, json, sys
from app.harness.service import service_client
from app.settings import Settings

async def main() -> None:
    settings = Settings(demo_warehouse_path=sys.argv[1], refresh_interval_s=0, auth=False)
    async with service_client(settings) as client:
        ready = await client.get("/readyz")
        routed = await client.post("/route", json={"question": "Which customers placed the most orders?"})
    loaded = sorted({m.split(".")[0] for m in sys.modules} & {"dspy", "litellm", "redis", "sqlglot", "mcp"})
    print(json.dumps({"ready": ready.status_code, "routed": routed.status_code, "loaded": loaded}))

asyncio.run(main())
"""
LM_SETTINGS = ("TABLEROUTER_LLM_MODEL", "TABLEROUTER_EMBEDDING_MODEL", "TABLEROUTER_SOURCES")


def test_a_lexical_service_never_imports_dspy_litellm_or_mcp(tmp_path: Path) -> None:
    # Its own process: other tests of this session have imported DSPy already.
    env = {k: v for k, v in os.environ.items() if k not in LM_SETTINGS}
    done = subprocess.run(
        [sys.executable, "-c", LEXICAL_SERVICE, str(tmp_path / "demo.db")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"ready": 200, "routed": 200, "loaded": []}


@pytest.mark.asyncio
async def test_start_up_logs_each_phase(
    make_settings: SettingsBuilder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.main")
    async with service_client(make_settings(tmp=tmp_path, refresh_interval_s=0)) as client:
        assert (await client.get("/readyz")).status_code == 200
    phases = [r.getMessage() for r in caplog.records if r.getMessage().startswith("start-up: ")]
    names = [p.removeprefix("start-up: ").rsplit(" (", 1)[0] for p in phases]
    assert names == [
        "store opened and migrated",
        "sources configured (1)",
        "lexical judge",
        "sources loaded (1)",
        "ready",
    ]
    assert all(p.endswith(" ms)") for p in phases)


@pytest.mark.asyncio
async def test_only_the_app_that_owns_its_process_freezes_the_heap(
    make_settings: SettingsBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tablerouter serve's app freezes what start-up left (no collection rescans it) and thaws it
    # at shutdown; an app sharing its process (this one's tests) leaves the process's heap alone.
    async with service_client(make_settings(tmp=tmp_path, refresh_interval_s=0)) as client:
        assert (await client.get("/readyz")).status_code == 200
        hosted = gc.get_freeze_count()
    monkeypatch.setenv("TABLEROUTER_DEMO_WAREHOUSE_PATH", str(tmp_path / "served-demo.db"))
    monkeypatch.setenv("TABLEROUTER_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("TABLEROUTER_REFRESH_INTERVAL_S", "0")
    get_settings.cache_clear()
    try:
        async with LifespanManager(app_from_environment(), startup_timeout=60, shutdown_timeout=60):
            served = gc.get_freeze_count()
    finally:
        get_settings.cache_clear()
    assert hosted == 0
    assert served > 100_000
    assert gc.get_freeze_count() == 0

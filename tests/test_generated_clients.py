"""Clients generated from the committed openapi.json drive the real service over HTTP.

Python: ``openapi-python-client`` generates a package into a temporary folder, imported and
used here. TypeScript: ``clients/ts`` installs its locked tools (``npm ci``), generates types
with ``openapi-typescript``, type-checks with ``tsc --noEmit`` and runs one route with Node
through ``openapi-fetch``.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = ROOT / "openapi.json"
TS_DIR = ROOT / "clients" / "ts"
PACKAGE = "tablerouter_client"
QUESTION = "Which customers placed the most orders?"
COMMAND_TIMEOUT = 300


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def python_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    out = tmp_path_factory.mktemp("pyclient")
    bin_dir = Path(sys.executable).parent
    # The generator formats its output with ruff, found on PATH.
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    generator = str(bin_dir / "openapi-python-client")
    args = [generator, "generate", "--path", str(OPENAPI), "--meta", "none", "--output-path", PACKAGE]
    _run(args, cwd=out, env=env)
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_python_client_routes_browses_and_gets_typed_problems(
    demo_service: str, python_client: ModuleType
) -> None:
    models = _module("models")
    route = _module("api.routing.route")
    route_batch = _module("api.routing.route_batch")
    list_sources = _module("api.sources.list_sources")
    list_tables = _module("api.sources.list_tables")
    # Every status the service answers must be declared, or the client raises.
    with python_client.Client(base_url=demo_service, raise_on_unexpected_status=True, timeout=60) as client:
        answer = route.sync(client=client, body=models.RouteRequest(question=QUESTION, top_k=5))
        assert isinstance(answer, models.RouteResponse)
        assert answer.judge_kind == models.JudgeKind.LEXICAL
        assert answer.source == "demo"
        assert 0 < len(answer.tables) <= 5
        assert all(isinstance(t, models.RoutedTable) and 0 <= t.score <= 1 for t in answer.tables)
        assert answer.stats.lm_calls == 0

        sources = list_sources.sync(client=client)
        assert [s.name for s in sources.sources] == ["demo"]
        assert sources.sources[0].tables > 50
        page = list_tables.sync("demo", client=client, limit=5)
        assert isinstance(page, models.TableList)
        assert len(page.tables) == 5
        assert {t.kind for t in page.tables} <= set(models.TableKind)

        missing = route.sync(client=client, body=models.RouteRequest(question=QUESTION, source="nope"))
        assert isinstance(missing, models.Problem)
        assert missing.type_ == models.ProblemType.NOT_FOUND
        assert missing.status == 404
        invalid = route.sync_detailed(client=client, body=models.RouteRequest(question=QUESTION, top_k=0))
        assert invalid.status_code == 422
        assert isinstance(invalid.parsed, models.Problem)
        assert invalid.parsed.type_ == models.ProblemType.VALIDATION
        assert [p.name for p in invalid.parsed.invalid_params] == ["body.top_k"]

        batch = route_batch.sync(
            client=client,
            body=models.RouteBatchRequest(
                requests=[
                    models.RouteRequest(question=QUESTION),
                    models.RouteRequest(question="x", source="nope"),
                ]
            ),
        )
        assert isinstance(batch.results[0].result, models.RouteResponse)
        assert batch.results[0].error is None
        assert batch.results[1].result is None
        assert batch.results[1].error.type_ == models.ProblemType.NOT_FOUND


@pytest.fixture(scope="module")
def ts_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed: the TypeScript client cannot be checked")
    _run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TS_DIR)
    _run(["npm", "run", "--silent", "generate"], cwd=TS_DIR)
    _run(["npx", "--no-install", "tsc", "--noEmit"], cwd=TS_DIR)
    _run(["npm", "run", "--silent", "build"], cwd=TS_DIR)
    return TS_DIR / "dist" / "src" / "route.js"


@pytest.mark.slow  # compiling the TypeScript client: ~17 s
def test_typescript_client_type_checks_and_routes(demo_service: str, ts_client: Path) -> None:
    out = json.loads(_run(["node", str(ts_client), demo_service, QUESTION], cwd=TS_DIR))
    assert out["judge_kind"] == "lexical"
    assert out["tables"]
    assert all(isinstance(name, str) for name in out["tables"])
    assert out["problem"] == {"status": 404, "type": "https://tablerouter.dev/problems/not-found"}

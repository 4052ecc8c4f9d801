"""Secrets (DSN passwords, LM keys, the Redis URL) never reach logs, answers, errors or the route log.

The service runs for real: a PostgreSQL warehouse whose URL carries a password, two sources
that cannot be reached (PostgreSQL and MariaDB, passwords in their URLs), a Redis URL with a
password on a closed port, and an LM (the simulator over HTTP) that refuses the configured key
with a 401 whose body echoes it in full, as a careless provider does.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus

import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from app.harness.service import service_client
from app.harness.stores import closed_port, small_pg_warehouse
from app.observability.logs import JsonFormatter
from app.observability.redaction import MASK, RedactingFilter, Redactor, secrets_of
from app.settings import Settings
from app.simulator.service import SimulatorConfig, running_simulator

WAREHOUSE_PW = "wh-Pa55word-xyz"
PG_DOWN_PW = "s3cretpw-pg"
MYSQL_DOWN_PW = "s3cretpw-my"
REDIS_PW = "r3dis-Secret-pw"
# Not shaped like any known key (no sk- prefix, no key= pair): only masking by value catches it.
LM_KEY = "QWERTYkey98765zz"
SECRETS = (WAREHOUSE_PW, PG_DOWN_PW, MYSQL_DOWN_PW, REDIS_PW, LM_KEY)


def _with_password(url: str, password: str, *, port: int | None = None) -> str:
    parsed = make_url(url).set(password=password)
    if port is not None:
        parsed = parsed.set(host="127.0.0.1", port=port)
    return parsed.render_as_string(hide_password=False)


def _assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked in {where}"


# ── the redactor on its own ──────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("cannot connect to postgresql+asyncpg://postgres:hunter2pw@db:5432/x", "hunter2pw"),
        ("redis://:r3dis-pw@cache:6379/0 is down", "r3dis-pw"),
        ("mysql+asyncmy://root:p%40ss-word@127.0.0.1:1/test", "p%40ss-word"),
        ('{"error": "Incorrect API key provided: sk-proj-AbCdEf0123456789"}', "AbCdEf0123456789"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("host=db user=app password=libpq-pw dbname=x", "libpq-pw"),
        ('{"api_key": "k-123456789"}', "k-123456789"),
    ],
)
def test_secret_shaped_text_is_masked(text: str, leaked: str) -> None:
    masked = Redactor()(text)
    assert leaked not in masked
    assert MASK in masked


def test_configured_secrets_are_masked_by_value_and_ordinary_text_is_kept() -> None:
    redact = Redactor(["plainvalue42", "p@ss word"])
    assert redact("provider said: plainvalue42 is wrong") == f"provider said: {MASK} is wrong"
    assert redact("login with p@ss word failed") == f"login with {MASK} failed"
    ordinary = "source 'sales': 12 tables, prompt_tokens=340, max_tokens: 1024, http://lm:8400/v1"
    assert redact(ordinary) == ordinary


def test_secrets_of_finds_every_secret_setting() -> None:
    settings = Settings.model_validate(
        {
            "sources": {"a": {"url": "postgresql+asyncpg://u:pw-source@h/db"}},
            "database_url": "postgresql+asyncpg://store:pw%2Fstore@h/db",
            "redis_url": "redis://:pw-redis@h:6379/0",
            "llm_api_key": "lm-key-value",
            "embedding_api_key": "emb-key-value",
        }
    )
    found = secrets_of(settings)
    for secret in ("pw-source", "pw%2Fstore", "pw/store", "pw-redis", "lm-key-value", "emb-key-value"):
        assert secret in found
        assert secret not in repr(settings)


@pytest.mark.parametrize("json_lines", [False, True])
def test_the_log_filter_masks_messages_arguments_and_tracebacks(json_lines: bool) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter(Redactor([LM_KEY])))
    logger = logging.getLogger("tests.secrets.filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("key %s refused", LM_KEY)
        try:
            raise ConnectionError(f"cannot reach postgresql://app:{PG_DOWN_PW}@db/x")
        except ConnectionError:
            logger.exception("refresh failed for %s", f"mysql+asyncmy://root:{MYSQL_DOWN_PW}@h/x")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    _assert_clean(out, "the log output")
    assert "ConnectionError: cannot reach postgresql://app:***@db/x" in (
        "\n".join(json.loads(line).get("exception", "") for line in out.splitlines()) if json_lines else out
    )


# ── the real service ─────────────────────────────────────────────────────────────────


@dataclass
class Leaky:
    """Settings full of secrets, and the warehouse schema that works."""

    settings: Settings
    schema: str


@pytest_asyncio.fixture(params=[True, False], ids=["lean-chat", "dspy-engine"])
async def leaky(request: pytest.FixtureRequest, pg_url: str, mysql_url: str) -> AsyncIterator[Leaky]:
    sim = SimulatorConfig(port=0, api_key="the-right-key")
    async with small_pg_warehouse(pg_url) as schema, running_simulator(sim) as sim_url:
        settings = Settings.model_validate(
            {
                "sources": {
                    "wh": {"url": _with_password(pg_url, WAREHOUSE_PW), "schemas": [schema]},
                    "pgdown": {"url": _with_password(pg_url, PG_DOWN_PW, port=closed_port())},
                    "mydown": {"url": _with_password(mysql_url, MYSQL_DOWN_PW, port=closed_port())},
                },
                "llm_model": "openai/tablerouter-sim",
                "llm_api_base": f"{sim_url}/v1",
                "llm_api_key": LM_KEY,
                "llm_lean_chat": request.param,
                "redis_url": f"redis://:{REDIS_PW}@127.0.0.1:{closed_port()}/0",
                "refresh_interval_s": 0,
                "route_cache_size": 0,
                "verdict_cache_size": 0,
                "retry_max_attempts": 1,
            }
        )
        yield Leaky(settings, schema)


async def test_no_secret_in_logs_answers_errors_or_the_route_log(
    leaky: Leaky, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with service_client(leaky.settings) as client:
        sources = await client.get("/sources")
        assert sources.status_code == HTTPStatus.OK
        by_name = {s["name"]: s for s in sources.json()["sources"]}
        assert by_name["pgdown"]["last_error"]
        assert by_name["mydown"]["last_error"]
        assert by_name["wh"]["tables"] == 3
        _assert_clean(sources.text, "GET /sources")

        texts = {"GET /sources": sources.text}
        for name in ("pgdown", "mydown"):
            refreshed = await client.post(f"/sources/{name}/refresh")
            assert refreshed.status_code == HTTPStatus.BAD_GATEWAY  # a failed refresh is an error
            assert refreshed.json()["detail"]
            assert refreshed.json()["source"]["last_error"]
            texts[f"POST /sources/{name}/refresh"] = refreshed.text
            texts[f"GET /sources/{name}"] = (await client.get(f"/sources/{name}")).text
            texts[f"GET /sources/{name}/tables"] = (await client.get(f"/sources/{name}/tables")).text
        texts["refresh of an unknown source"] = (await client.post("/sources/nope/refresh")).text

        # The LM refuses the key and echoes it: the route degrades to the lexical judge.
        question = {"source": "wh", "question": "Which customers ordered most?"}
        routed = await client.post("/route", json=question)
        assert routed.status_code == HTTPStatus.OK
        answer = routed.json()
        assert answer["degraded"] is True
        assert f"Incorrect API key provided: {MASK}" in answer["degraded_reason"]
        texts["POST /route"] = routed.text
        streamed = await client.post(
            "/route",
            json={"source": "wh", "question": "Which orders had most lines?"},
            headers={"accept": "text/event-stream"},
        )
        texts["POST /route (stream)"] = streamed.text
        texts["GET /routes/{id}"] = (await client.get(f"/routes/{answer['route_id']}")).text
        texts["GET /openapi.json"] = (await client.get("/openapi.json")).text
        texts["GET /metrics"] = (await client.get("/metrics")).text
        texts["GET /readyz"] = (await client.get("/readyz")).text
    for where, text in texts.items():
        _assert_clean(text, where)
    assert "Incorrect API key provided" in caplog.text  # the failure was logged ...
    _assert_clean(caplog.text, "the logs")  # ... without the key or any password
    for record in caplog.records:
        _assert_clean(record.getMessage(), f"log record {record.name}")

"""Shared fixtures: real database servers on loopback, URLs from the environment.

PostgreSQL and MariaDB run on this machine (see README); CI's ``.ci/run`` starts them when
they are down. Override with ``TABLEROUTER_TEST_PG_URL`` / ``TABLEROUTER_TEST_MYSQL_URL``.
"""

from __future__ import annotations

import os

import pytest

# Test support as plugins (tests/fixtures/): one builder per thing, shared by every module.
pytest_plugins = [
    "tests.fixtures.settings",
    "tests.fixtures.warehouse",
    "tests.fixtures.replicas",
    "tests.fixtures.auth",
    "tests.fixtures.live_server",
    "tests.fixtures.private_pg",
    "tests.fixtures.judge_prompts",
    "tests.fixtures.dbt_run",
]

# Most tests are about routing, not keys: their services run with auth off unless a test turns
# it on (Settings(auth=True), as tests/test_auth.py and its neighbours do). Subprocesses inherit it.
os.environ.setdefault("TABLEROUTER_AUTH", "off")

PG_URL = os.environ.get("TABLEROUTER_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("TABLEROUTER_TEST_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306/test")


@pytest.fixture(scope="session")
def pg_url() -> str:
    """Async SQLAlchemy URL of the test PostgreSQL database."""
    return PG_URL


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """Async SQLAlchemy URL of the test MariaDB/MySQL database."""
    return MYSQL_URL

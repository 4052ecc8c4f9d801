"""Bad settings stop start-up with one line naming the setting: never a value, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from app.settings import Settings

SECRET = "S3cr3tPw"
ADMIN_KEY = f"short-{SECRET}"  # under the 32 characters an admin key needs


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["migrate"]])
@pytest.mark.parametrize(
    ("setting", "value", "said"),
    [
        (
            "TABLEROUTER_SOURCES",
            json.dumps({"wh": f"postgresql+asyncpg://bob:{SECRET}@db/x"}),
            "TABLEROUTER_SOURCES: source 'wh' must be an object",
        ),
        (
            "TABLEROUTER_SOURCES",
            json.dumps({"wh": {"url": f"postgresql+asyncpg://bob:{SECRET}@db/x", "schemas": SECRET}}),
            "TABLEROUTER_SOURCES: source 'wh' schemas:",
        ),
        ("TABLEROUTER_ADMIN_KEY", ADMIN_KEY, "TABLEROUTER_ADMIN_KEY: Value error"),
    ],
    ids=["source-as-string", "schemas-not-a-list", "short-admin-key"],
)
def test_bad_settings_stop_start_up_in_one_secret_free_line(
    command: list[str], setting: str, value: str, said: str
) -> None:
    env = {**os.environ, setting: value}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *command],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert said in lines[0]
    assert SECRET not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_a_validation_error_never_holds_the_value() -> None:
    """Whoever prints the error (uvicorn, alembic) shows no input: the model hides it."""
    with pytest.raises(ValidationError) as raised:
        Settings(sources={"wh": f"postgresql+asyncpg://bob:{SECRET}@db/x"})
    assert SECRET not in str(raised.value)

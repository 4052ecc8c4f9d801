"""examples/frontend.py runs its whole loop against a live demo service: route, prompt, SQL, feedback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "frontend.py"
QUESTION = "Which customers placed more than five orders last month?"


def test_the_frontend_example_reaches_the_route_log(demo_service: str) -> None:
    # No LM for the example: it writes its template SQL, whatever the environment says.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEROUTER_LLM_")}
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), QUESTION, "--base-url", demo_service],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "--- SQL prompt ---" in run.stderr
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["sql_by"] == "template"
    assert "JOIN" in outcome["sql"]

    logged = httpx.get(f"{demo_service}/routes/{outcome['route_id']}", timeout=30)
    assert logged.status_code == 200, logged.text
    route = logged.json()
    assert route["question"] == QUESTION
    feedback = route["feedback"]
    assert feedback["sql"] == outcome["sql"]
    assert feedback["used_tables"] == sorted(outcome["used_tables"])
    # The SQL read tables of the route's own answer, joined as its 'joins' said.
    assert set(feedback["used_tables"]) <= {t["name"] for t in route["tables"]}
    assert len(feedback["used_tables"]) >= 2

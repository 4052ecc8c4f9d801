"""The whole loop of a text-to-SQL frontend over tablerouter: route, prompt, SQL, feedback.

1. ``POST /route`` with ``include: ["columns", "ddl", "joins"]``: the tables the SQL needs, with
   their DDL and the FK join conditions between them, from the snapshot the route ran over.
2. A SQL-writing prompt from that DDL and those joins.
3. The SQL, written by an LM, or by a template (below).
4. ``POST /routes/{route_id}/feedback`` with the SQL: the service reads the tables it uses, and
   the route log (``GET /routes/{route_id}``) keeps them next to the route's answer.

Run it against the demo (the bundled SQLite warehouse, no key, the lexical judge)::

    bash scripts/serve.sh                     # in another terminal: the service on 127.0.0.1:8000
    .venv/bin/python examples/frontend.py "Which customers placed more than five orders last month?"

Options: ``--base-url`` (default http://127.0.0.1:8000), ``--api-key`` (or ``TABLEROUTER_API_KEY``)
when the service requires keys, ``--top-k``, ``--ddl-dialect``. The steps go to stderr; the last
line on stdout is one JSON object (route id, who wrote the SQL, the SQL, the tables the
feedback stored).

Who writes the SQL:

- an LM, when ``TABLEROUTER_LLM_MODEL`` and ``TABLEROUTER_LLM_API_BASE`` are set (the variables
  the service itself reads; ``TABLEROUTER_LLM_API_KEY`` for the endpoint's key): the prompt goes
  to the OpenAI-compatible ``{api_base}/chat/completions``, the model named without its
  ``openai/`` or ``hosted_vllm/`` prefix;
- otherwise a template. The project's LM simulator answers the router's judge prompts only (it
  has no SQL-writing policy), so it cannot stand in here; the script then writes
  ``SELECT * FROM`` the best-ranked table that has a join, ``JOIN`` every returned table the
  joins reach from it, ``LIMIT 100``. That SQL reads the right tables over the right keys, but
  it does not answer the question, and its first line says so.

Plain httpx, no SDK: every request and answer is visible in this file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import deque
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
TIMEOUT = httpx.Timeout(60.0, connect=5.0)
LITELLM_PREFIXES = ("openai/", "hosted_vllm/")
TEMPLATE_HEADER = "-- template SQL: the routed tables and their FK joins, not an answer to the question"
_FENCE = re.compile(r"```(?:sql)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Join:
    """A foreign-key join between two routed tables."""

    from_table: str
    to_table: str
    condition: str


@dataclass(frozen=True)
class RoutedSchema:
    """What the route answered, as far as writing SQL goes."""

    route_id: str
    dialect: str
    tables: list[str]  # best first
    ddl: dict[str, str]
    joins: list[Join]


def route(client: httpx.Client, question: str, top_k: int, ddl_dialect: str | None) -> RoutedSchema:
    """Step 1: the tables the SQL needs, with their DDL and joins."""
    body: dict[str, Any] = {"question": question, "top_k": top_k, "include": ["columns", "ddl", "joins"]}
    if ddl_dialect:
        body["ddl_dialect"] = ddl_dialect
    answer = _ok(client.post("/route", json=body))
    detail = answer["schema_detail"]
    return RoutedSchema(
        route_id=answer["route_id"],
        dialect=detail["ddl_dialect"],
        tables=[t["name"] for t in answer["tables"]],
        ddl={t["name"]: t["ddl"] for t in detail["tables"]},
        joins=[Join(j["from_table"], j["to_table"], j["condition"]) for j in detail["joins"]],
    )


def sql_prompt(schema: RoutedSchema, question: str) -> str:
    """Step 2: the SQL-writing prompt, from the routed tables' DDL and joins."""
    ddl = "\n\n".join(schema.ddl[name] for name in schema.tables)
    joins = "\n".join(f"- {j.condition}" for j in schema.joins) or "- (none between these tables)"
    return (
        f"Write one {schema.dialect} SQL query that answers the question. Use only these tables.\n\n"
        f"Tables:\n{ddl}\n\nJoin conditions between them:\n{joins}\n\n"
        f"Question: {question}\n\nAnswer with the SQL only."
    )


def template_sql(schema: RoutedSchema) -> str:
    """Step 3 without an LM: the best-ranked joined table, joined to every table its joins reach."""
    joined = {name for j in schema.joins for name in (j.from_table, j.to_table)}
    start = next((name for name in schema.tables if name in joined), schema.tables[0])
    lines = [TEMPLATE_HEADER, "SELECT *", f"FROM {start}"]
    reached, frontier = {start}, deque([start])
    while frontier:
        table = frontier.popleft()
        for join in schema.joins:
            other = join.to_table if join.from_table == table else join.from_table
            if table in (join.from_table, join.to_table) and other not in reached:
                lines.append(f"JOIN {other} ON {join.condition}")
                reached.add(other)
                frontier.append(other)
    lines.append("LIMIT 100")
    return "\n".join(lines)


def lm_sql(prompt: str, model: str, api_base: str, api_key: str | None) -> str:
    """Step 3 with an LM: the prompt to an OpenAI-compatible chat endpoint, the SQL out of its reply."""
    for prefix in LITELLM_PREFIXES:
        model = model.removeprefix(prefix)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
    with httpx.Client(base_url=api_base.rstrip("/"), timeout=TIMEOUT, headers=headers) as lm:
        reply: str = _ok(lm.post("/chat/completions", json=body))["choices"][0]["message"]["content"]
    fenced = _FENCE.search(reply)
    return (fenced.group(1) if fenced else reply).strip()


def send_feedback(client: httpx.Client, route_id: str, sql: str) -> list[str]:
    """Step 4: the final SQL back to the route log; the tables the service read from it."""
    stored = _ok(client.post(f"/routes/{route_id}/feedback", json={"sql": sql}))
    used: list[str] = stored["used_tables"]
    return used


def _ok(response: httpx.Response) -> Any:
    """The JSON of a 2xx answer; a problem+json answer ends the script with its detail."""
    if response.is_success:
        return response.json()
    request = response.request
    raise SystemExit(f"{request.method} {request.url.path}: {response.status_code} {response.text}")


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Route one question, write its SQL, send the feedback; 0 when the feedback is stored."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("question")
    parser.add_argument("--base-url", default=os.environ.get("TABLEROUTER_URL", DEFAULT_BASE_URL))
    parser.add_argument("--api-key", default=os.environ.get("TABLEROUTER_API_KEY"))
    parser.add_argument("--top-k", type=int, default=6)
    parser.add_argument("--ddl-dialect", help="sqlglot dialect of the DDL; default: the source's")
    args = parser.parse_args(argv)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    with httpx.Client(base_url=args.base_url, timeout=TIMEOUT, headers=headers) as client:
        schema = route(client, args.question, args.top_k, args.ddl_dialect)
        _say(f"route {schema.route_id}: {', '.join(schema.tables)} ({len(schema.joins)} joins)")
        prompt = sql_prompt(schema, args.question)
        _say(f"--- SQL prompt ---\n{prompt}\n")
        model, api_base = os.environ.get("TABLEROUTER_LLM_MODEL"), os.environ.get("TABLEROUTER_LLM_API_BASE")
        if model and api_base:
            sql, writer = lm_sql(prompt, model, api_base, os.environ.get("TABLEROUTER_LLM_API_KEY")), "lm"
        else:
            sql, writer = template_sql(schema), "template"
        _say(f"--- SQL ({writer}) ---\n{sql}\n")
        used = send_feedback(client, schema.route_id, sql)
        _say(f"feedback stored on route {schema.route_id}: used {', '.join(used)}")
    print(json.dumps({"route_id": schema.route_id, "sql_by": writer, "sql": sql, "used_tables": used}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

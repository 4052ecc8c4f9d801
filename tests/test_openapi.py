"""The committed OpenAPI document is the code's, and good enough for generated clients."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from app.api.openapi_doc import render_openapi
from app.api.problems import PROBLEM_JSON, TYPE_BASE, ProblemType
from app.cli import main
from app.main import create_app
from app.settings import Settings

COMMITTED = Path(__file__).resolve().parent.parent / "openapi.json"
REGENERATE = "uv run tablerouter openapi > openapi.json"
OPERATION_ID = re.compile(r"^[a-z][a-zA-Z]*$")
# Error responses that are not problems: readiness answers with its probe body.
NOT_PROBLEMS = {("/readyz", "get", "503")}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings()).openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_committed_document_matches_the_code() -> None:
    current = render_openapi(create_app(Settings()))
    committed = COMMITTED.read_text() if COMMITTED.exists() else ""
    assert current == committed, f"openapi.json differs from the code: regenerate it with `{REGENERATE}`"


def test_the_cli_prints_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["openapi"]) == 0
    assert capsys.readouterr().out == COMMITTED.read_text()


def test_operation_ids_are_clean_and_unique(document: dict[str, Any]) -> None:
    ids = [op.get("operationId", "") for _, _, op in _operations(document)]
    assert all(OPERATION_ID.match(i) for i in ids), ids
    assert len(ids) == len(set(ids))
    assert {"route", "routeBatch", "listSources", "listTables", "refreshSource", "healthz", "readyz"} <= set(
        ids
    )


def test_component_schemas_are_named(document: dict[str, Any]) -> None:
    names = list(document["components"]["schemas"])
    generated = [n for n in names if n.startswith("Body_") or "__" in n or n.endswith(("-Input", "-Output"))]
    assert not generated, f"name these models: {generated}"


def _properties(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (model, name, prop)
        for model, schema in document["components"]["schemas"].items()
        for name, prop in schema.get("properties", {}).items()
    ]


def _is_object_reference(prop: dict[str, Any]) -> bool:
    """A field holding other models: those carry their own examples."""
    text = json.dumps(prop.get("anyOf", prop.get("items", prop)))
    return '"$ref"' in text and "examples" not in prop


def test_every_field_has_a_description_and_scalars_an_example(document: dict[str, Any]) -> None:
    undescribed = [f"{m}.{n}" for m, n, p in _properties(document) if not p.get("description")]
    assert not undescribed, f"add a description to: {undescribed}"
    no_example = [
        f"{m}.{n}"
        for m, n, p in _properties(document)
        if "examples" not in p and "example" not in p and not _is_object_reference(p)
    ]
    assert not no_example, f"add an example to: {no_example}"


def test_every_error_response_is_a_typed_problem(document: dict[str, Any]) -> None:
    for path, method, op in _operations(document):
        takes_input = "requestBody" in op or op.get("parameters")
        if takes_input:
            assert "422" in op["responses"], (path, method)
        for status, response in op["responses"].items():
            if int(status) < 400 or (path, method, status) in NOT_PROBLEMS:
                continue
            assert response["content"] == {
                PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
            }, (path, method, status)


def test_closed_sets_are_enums(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["JudgeKind"]["enum"] == ["lm", "lexical"]
    assert schemas["RouteResponse"]["properties"]["judge_kind"] == {
        "$ref": "#/components/schemas/JudgeKind",
        "description": "whether an LM or the lexical ranking judged",
        "examples": ["lm"],
    }
    problem_type = schemas["Problem"]["properties"]["type"]
    assert problem_type["enum"] == [TYPE_BASE + t.value for t in ProblemType]
    assert problem_type["x-enum-varnames"] == [t.name for t in ProblemType]
    assert schemas["TableKind"]["enum"] == ["table", "view"]


def test_route_declares_its_event_stream(document: dict[str, Any]) -> None:
    ok = document["paths"]["/route"]["post"]["responses"]["200"]["content"]
    assert list(ok) == ["application/json", "text/event-stream"]
    events = ok["text/event-stream"]["schema"]["x-sse-events"]
    schemas = document["components"]["schemas"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in events.values()} <= set(schemas)

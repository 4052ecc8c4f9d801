"""The OpenAPI document: built from the routes, plus the schemas only documents reference.

``tablerouter openapi`` prints it; ``openapi.json`` at the top of the repository is that
output, committed, and a test fails when the code and the committed file differ.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.api.problems import Problem
from app.api.route_events import RoutePartialEvent, RouteProgressEvent

# Referenced from the problem+json responses and the text/event-stream description rather than
# from a route's model, so FastAPI would not list them.
EXTRA_MODELS: tuple[type[BaseModel], ...] = (Problem, RouteProgressEvent, RoutePartialEvent)
TAGS = [
    {"name": "routing", "description": "Route questions to the tables their SQL needs."},
    {"name": "sources", "description": "Browse and refresh the configured warehouses."},
    {"name": "health", "description": "Liveness and readiness probes."},
]
DESCRIPTION = (
    "Given a question and a warehouse of many tables, returns the few tables the SQL needs, "
    "ranked, with scores and reasons. Errors are RFC 9457 `application/problem+json`."
)


def _with_extra_models(document: dict[str, Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema(
        [(m, "serialization") for m in EXTRA_MODELS], ref_template="#/components/schemas/{model}"
    )
    for name, schema in defs.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    return document


def _responses_by_status(document: dict[str, Any]) -> dict[str, Any]:
    # Declared in whatever order routes list them; sorted, the document reads and diffs better.
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            operation["responses"] = dict(sorted(responses.items()))
    return document


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the full document (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=DESCRIPTION,
                routes=app.routes,
                tags=TAGS,
            )
            app.openapi_schema = _responses_by_status(_with_extra_models(document))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def render_openapi(app: FastAPI) -> str:
    """The app's document as committed in ``openapi.json`` (build the app on default settings)."""
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"

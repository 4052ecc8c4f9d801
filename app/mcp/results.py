"""Tool results: an answer as structured content plus a short text, an error as a problem.

An agent reads the text; a program reads the structured content, which the tool's output
schema describes. A failed call is a tool error (``isError``) whose structured content is the
same RFC 9457 problem the REST API answers, ``status`` included, so an agent can tell a 404 from
a 429 and wait ``retry_after`` seconds.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, ValidationError

from app.api.problems import AppError, ProblemType, error_body, internal_error_body, problem_body
from app.api.route_log_schemas import FeedbackBody
from app.api.schemas import RouteResponse, SourceList, TableList

__all__ = ["answer_result", "error_result", "summary"]

log = logging.getLogger(__name__)


def _route_text(body: RouteResponse) -> str:
    tables = ", ".join(f"{t.name} ({t.score:.2f})" for t in body.tables) or "no table"
    lines = [f"Tables for this question, best first: {tables}.", f"route_id: {body.route_id}"]
    if body.follow_up is not None and body.follow_up.kept_from_previous:
        lines.append("kept from the earlier turn: " + ", ".join(body.follow_up.kept_from_previous))
    if body.partial or body.degraded:
        lines.append("partial answer: " + (body.degraded_reason or "some chunks were not judged in time"))
    return "\n".join(lines)


def summary(body: BaseModel) -> str:
    """The few lines an agent reads of an answer."""
    if isinstance(body, RouteResponse):
        return _route_text(body)
    if isinstance(body, SourceList):
        return "\n".join(f"{s.name}: {s.dialect}, {s.tables} tables, {s.status.value}" for s in body.sources)
    if isinstance(body, TableList):
        return "\n".join(
            f"{t.name}({', '.join(c.name + ' ' + (c.type or '?') for c in t.columns)})" for t in body.tables
        )
    if isinstance(body, FeedbackBody):
        return f"feedback stored for route {body.route_id}: {', '.join(body.used_tables)}"
    raise TypeError(f"no summary for {type(body).__name__}")


def answer_result(body: BaseModel) -> CallToolResult:
    """A successful call: the body as structured content, and its summary."""
    return CallToolResult(
        content=[TextContent(type="text", text=summary(body))],
        structured_content=body.model_dump(mode="json"),
    )


def _problem_result(problem: dict[str, Any]) -> CallToolResult:
    text = f"{problem['status']} {problem['title']}: {problem['detail']}"
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=problem, is_error=True
    )


def error_result(exc: Exception, tool: str) -> CallToolResult:
    """A failed call as the problem REST would answer (an unexpected failure says nothing more)."""
    instance = f"/mcp#{tool}"
    if isinstance(exc, AppError):
        return _problem_result(error_body(exc, instance))
    if isinstance(exc, ValidationError):
        params = [
            {"name": ".".join(str(p) for p in e["loc"]) or "arguments", "reason": e["msg"]}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{p['name']}: {p['reason']}" for p in params)
        status = HTTPStatus.UNPROCESSABLE_ENTITY
        return _problem_result(
            problem_body(status, ProblemType.VALIDATION, detail, instance, invalid_params=params)
        )
    log.error("MCP tool %s failed", tool, exc_info=exc)  # the caller learns nothing more than REST's 500
    return _problem_result(internal_error_body(instance))

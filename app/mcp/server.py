"""The MCP server: four tools over the service's own logic, speaking streamable HTTP.

Stateless: each call stands alone (a POST answered with its own event stream, progress
notifications first), so any replica behind a load balancer can serve any call, as with REST.
The tools are ``route``, ``list_sources``, ``describe_tables`` and ``send_feedback``; every call
is authenticated with the request's Bearer key (the mount refused requests without one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field
from starlette.applications import Starlette

from app.api.auth import principal_of
from app.api.route_log_schemas import FeedbackBody, FeedbackRequest
from app.api.schemas import RouteRequest, RouteResponse, SourceList, TableList
from app.api.state import AppState
from app.auth.principal import Principal
from app.mcp import tools
from app.mcp.progress import relayed_progress
from app.mcp.results import answer_result, error_result

__all__ = ["http_app", "mcp_server"]

INSTRUCTIONS = (
    "tablerouter picks the few warehouse tables a text-to-SQL question needs. Call `route` with the "
    "user's question before writing SQL and put only the returned tables (with include=['columns'] "
    "for their columns) in your SQL prompt; for a follow-up question pass the earlier route's "
    "route_id as previous_route_id. `describe_tables` gives columns, keys and comments of named "
    "tables; after running the SQL, `send_feedback` says which tables it really used."
)


def _described(field: str) -> Any:
    """The REST body's description of ``field``, so both interfaces document it alike."""
    return Field(description=RouteRequest.model_fields[field].description)


def _token(ctx: Context) -> str | None:
    header = (ctx.headers or {}).get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def mcp_server(state_of: Callable[[], AppState]) -> MCPServer:
    """The server and its tools, reading the app's state at each call."""
    # The SDK sets up logging only where nothing did (a bare script, not `serve`): quietly there.
    server: MCPServer = MCPServer(
        "tablerouter", instructions=INSTRUCTIONS, version="0.1.0", log_level="WARNING"
    )

    async def caller(ctx: Context) -> tuple[AppState, Principal]:
        state = state_of()
        return state, await principal_of(state, _token(ctx))

    @server.tool(
        name="route",
        title="Route a question to the tables its SQL needs",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    async def route(
        ctx: Context,
        *,
        question: Annotated[str, _described("question")],
        source: Annotated[str | None, _described("source")] = None,
        schemas: Annotated[list[str] | None, _described("schemas")] = None,
        top_k: Annotated[int, _described("top_k")] = 10,
        min_score: Annotated[float | None, _described("min_score")] = None,
        deadline_ms: Annotated[int | None, _described("deadline_ms")] = None,
        token_budget: Annotated[int | None, _described("token_budget")] = None,
        include: Annotated[list[str] | None, _described("include")] = None,
        ddl_dialect: Annotated[str | None, _described("ddl_dialect")] = None,
        history: Annotated[list[str] | None, _described("history")] = None,
        previous_route_id: Annotated[str | None, _described("previous_route_id")] = None,
    ) -> Annotated[CallToolResult, RouteResponse]:
        """The ranked tables an SQL query answering the question must read (as POST /route).

        Sends progress notifications (chunks judged of chunks planned) while the LM judges.
        """
        arguments = {
            "question": question,
            "source": source,
            "schemas": schemas,
            "top_k": top_k,
            "min_score": min_score,
            "deadline_ms": deadline_ms,
            "token_budget": token_budget,
            "include": include or [],
            "ddl_dialect": ddl_dialect,
            "history": history or [],
            "previous_route_id": previous_route_id,
        }
        try:
            state, principal = await caller(ctx)
            body = RouteRequest.model_validate(arguments)
            async with relayed_progress(ctx.report_progress) as progress:
                answered = await tools.route(state, principal, body, progress)
        except Exception as exc:  # every failure becomes a tool error, never a protocol error
            return error_result(exc, "route")
        return answer_result(answered)

    @server.tool(
        name="list_sources",
        title="List the warehouses this key may query",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    async def list_sources(ctx: Context) -> Annotated[CallToolResult, SourceList]:
        """Every warehouse (source) the key sees: dialect, table count, status (as GET /sources)."""
        try:
            answered = await tools.sources(*await caller(ctx))
        except Exception as exc:
            return error_result(exc, "list_sources")
        return answer_result(answered)

    @server.tool(
        name="describe_tables",
        title="Describe named tables: columns, keys, comments",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    async def describe_tables(
        ctx: Context,
        tables: Annotated[
            list[str],
            Field(min_length=1, max_length=100, description="tables as schema.table, or table when unique"),
        ],
        source: Annotated[str | None, _described("source")] = None,
    ) -> Annotated[CallToolResult, TableList]:
        """Columns (type, nullable, comment), primary and foreign keys of the named tables."""
        try:
            state, principal = await caller(ctx)
            answered = await tools.describe(state, principal, source, tables)
        except Exception as exc:
            return error_result(exc, "describe_tables")
        return answer_result(answered)

    @server.tool(
        name="send_feedback",
        title="Report the tables a route's final SQL used",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True),
    )
    async def send_feedback(
        ctx: Context,
        route_id: Annotated[str, Field(min_length=1, max_length=64, description="the route's route_id")],
        used_tables: Annotated[
            list[str] | None, Field(description=FeedbackRequest.model_fields["used_tables"].description)
        ] = None,
        sql: Annotated[str | None, Field(description=FeedbackRequest.model_fields["sql"].description)] = None,
    ) -> Annotated[CallToolResult, FeedbackBody]:
        """Which tables the SQL written from a route really used (as POST /routes/{route_id}/feedback)."""
        try:
            state, principal = await caller(ctx)
            body = FeedbackRequest.model_validate({"used_tables": used_tables or [], "sql": sql})
            answered = await tools.feedback(state, principal, route_id, body)
        except Exception as exc:
            return error_result(exc, "send_feedback")
        return answer_result(answered)

    return server


def http_app(server: MCPServer, path: str) -> Starlette:
    """The streamable-HTTP app serving ``server`` at ``path`` (its session manager run by the caller)."""
    return server.streamable_http_app(
        streamable_http_path=path,
        stateless_http=True,
        # Every call carries an API key and the app's CORS rules apply, as on REST; a Host check
        # would refuse every deployment's own host name.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )

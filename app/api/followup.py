"""A follow-up's conversation from its request: the earlier questions, and the previous route's tables.

``previous_route_id`` must name a route the same key made over the same source (another key's
route is as unknown as a missing one: 404); its question becomes the last earlier turn and its
tables are carried, for the grant to check again when the query is built.
"""

from __future__ import annotations

from app.api.problems import UnprocessableError
from app.api.route_log_api import owned_route
from app.api.schemas import FollowUpBody, RouteRequest
from app.api.state import AppState
from app.auth.principal import Principal
from app.routing.conversation import Conversation, bounded_turns
from app.routing.preparation.prepared import PreparedCatalog
from app.routing.query import RouteQuery
from app.routing.result import RouteResult

__all__ = ["conversation_of", "follow_up_body"]


async def conversation_of(
    state: AppState, body: RouteRequest, principal: Principal, prepared: PreparedCatalog
) -> Conversation | None:
    """The request's conversation, bounded by the settings; None for a question alone."""
    if not body.history and body.previous_route_id is None:
        return None
    turns = list(body.history)
    carried: tuple[tuple[str, float], ...] = ()
    if body.previous_route_id is not None:
        previous = await owned_route(state, body.previous_route_id, principal)
        if previous.source != prepared.catalog.source:
            raise UnprocessableError(
                f"previous route {body.previous_route_id!r} was routed over another source; "
                f"a follow-up stays on its source"
            )
        turns.append(previous.question)
        carried = tuple((str(t["name"]), float(t["score"])) for t in previous.tables)
    settings = state.settings
    earlier = bounded_turns(turns, settings.followup_max_turns, settings.followup_max_chars)
    return Conversation(earlier, carried, body.previous_route_id)


def follow_up_body(query: RouteQuery, result: RouteResult) -> FollowUpBody | None:
    """What the answer says of a follow-up: turns read, and the previous tables it kept."""
    conversation = query.conversation
    if conversation is None:
        return None
    carried = {name for name, _ in conversation.carried}
    return FollowUpBody(
        context_turns=len(conversation.earlier),
        previous_route_id=conversation.previous_route_id,
        kept_from_previous=[t.name for t in result.tables if t.name in carried],
    )

"""A route's parameters as one frozen value, built once at the edge.

Everything a route needs travels in a ``RouteQuery``: the catalog snapshot it runs over, the
scope the request and the asking key's grant leave (resolved here, so an unknown schema fails
before any work), the question, how many tables to answer and from which score, the deadline
and the route's id. The service, its caches and the stream read it; nobody re-derives it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.routing.conversation import Conversation
from app.routing.deadline import Deadline
from app.routing.preparation.prepared import PreparedCatalog, RouteScope
from app.routing.token_hold import TokenHold

__all__ = ["RouteQuery"]


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """One route request, resolved against a catalog snapshot."""

    route_id: str
    prepared: PreparedCatalog
    scope: RouteScope
    question: str
    top_k: int
    min_score: float
    deadline: Deadline
    schemas: tuple[str, ...] | None = None
    token_budget: int | None = None  # LM tokens the route may spend; None: no budget
    conversation: Conversation | None = None  # a follow-up's earlier turns; None: it stands alone
    # The route's hold on its key's daily budget (None: the key has none); not part of the question.
    hold: TokenHold | None = field(default=None, compare=False)

    @classmethod
    def build(
        cls,
        prepared: PreparedCatalog,
        question: str,
        *,
        top_k: int,
        min_score: float,
        deadline: Deadline,
        schemas: Sequence[str] | None = None,
        patterns: Sequence[str] | None = None,
        route_id: str | None = None,
        token_budget: int | None = None,
        conversation: Conversation | None = None,
    ) -> RouteQuery:
        """The query over what ``patterns`` (a key's grant; None: every table) shows of ``schemas``.

        Raises UnknownSchemaError for a schema the visible catalog lacks. A follow-up carries only
        the previous tables this scope holds: the grant is checked again, now.
        """
        scope = prepared.scope(schemas, patterns)
        if conversation is not None and conversation.carried:
            inside = scope.names if scope.names is not None else frozenset(prepared.lexical.names)
            carried = tuple((n, score) for n, score in conversation.carried if n in inside)
            conversation = dataclasses.replace(conversation, carried=carried)
        return cls(
            route_id=route_id or uuid.uuid4().hex,
            prepared=prepared,
            scope=scope,
            question=question,
            top_k=top_k,
            min_score=min_score,
            deadline=deadline,
            schemas=None if schemas is None else tuple(schemas),
            token_budget=token_budget,
            conversation=conversation,
        )

    @property
    def source(self) -> str:
        """The name of the source the route runs over."""
        return self.prepared.catalog.source

    @property
    def judged_question(self) -> str:
        """The question as the judge reads it: with a follow-up's earlier questions before it."""
        return self.question if self.conversation is None else self.conversation.judge_text(self.question)

    @property
    def lexical_question(self) -> str:
        """The text the shortlist scores: a follow-up's earlier questions count too."""
        return self.question if self.conversation is None else self.conversation.lexical_text(self.question)

    @property
    def carried(self) -> dict[str, float]:
        """The previous route's tables the key sees and their scores there: a floor under their prior."""
        return {} if self.conversation is None else dict(self.conversation.carried)

    @property
    def visible(self) -> str | None:
        """The fingerprint of the tables the key's grant shows; None: every table."""
        return None if self.scope.grant is None else self.scope.grant.fingerprint

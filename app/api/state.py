"""The typed application state the lifespan builds and the routes read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from fastapi import Request

from app.answering import RouteAnswering
from app.auth.authenticator import Authenticator
from app.auth.key_limits import KeyLimiter
from app.auth.key_repository import ApiKeyRepository
from app.memory.route_memory import RouteMemory
from app.routing.service import Router
from app.settings import Settings
from app.sources.registry import CatalogRegistry
from app.store.runtime import StoreRuntime

if TYPE_CHECKING:  # built only when an LM is configured; a lexical service never imports DSPy
    from app.llm.backend import LMBackend


@dataclass
class AppState:
    """Everything long-lived: built in the lifespan, closed at shutdown."""

    settings: Settings
    registry: CatalogRegistry
    backend: LMBackend | None
    router: Router
    store: StoreRuntime
    keys: ApiKeyRepository
    authenticator: Authenticator
    limits: KeyLimiter
    memory: RouteMemory

    @property
    def answering(self) -> RouteAnswering:
        """The route use case over this state's parts."""
        return RouteAnswering(self.router, self.limits, self.store.writer, self.registry)


def get_state(request: Request) -> AppState:
    """The application state (FastAPI dependency)."""
    return cast(AppState, request.app.state.tablerouter)

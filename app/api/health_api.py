"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app.api.schemas import Health, HealthStatus
from app.api.state import AppState, get_state

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz", summary="Liveness", response_model=Health)
async def healthz() -> Health:
    """The process is up and serving HTTP."""
    return Health(status=HealthStatus.OK)


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="Readiness: the store answers and some source has a catalog snapshot",
    response_model=Health,
    responses={503: {"model": Health, "description": "the store is down, or no source has a snapshot"}},
)
async def readyz(state: Annotated[AppState, Depends(get_state)]) -> JSONResponse:
    """Ready when the service can serve: its store reachable and at least one source routable.

    A source that failed does not make the others unready: `GET /sources` shows each one's state.
    """
    loaded = {name: s.prepared is not None for name, s in state.registry.sources.items()}
    ready = any(loaded.values()) and await state.store.store.reachable()
    # Open to anyone: with keys required it does not name the sources (a key may not see them all).
    shown = {} if state.settings.auth else loaded
    body = Health(status=HealthStatus.READY if ready else HealthStatus.NOT_READY, sources=shown)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)

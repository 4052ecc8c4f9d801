"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app.api.schemas import Health, HealthStatus
from app.api.state import AppState, get_state

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    operation_id="healthz",
    summary="Liveness",
    response_model=Health,
    response_model_exclude_none=True,
)
async def healthz() -> Health:
    """The process is up and serving HTTP."""
    return Health(status=HealthStatus.OK)


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="Readiness: some source has a catalog snapshot and some key can be checked",
    response_model=Health,
    responses={
        503: {
            "model": Health,
            "description": "no source has a snapshot, or the store is down and no key can be checked",
        }
    },
)
async def readyz(state: Annotated[AppState, Depends(get_state)]) -> JSONResponse:
    """Ready when the service can serve: a source routable, and a key it can check.

    A source that failed does not make the others unready: `GET /sources` shows each one's state.
    The store down does not either (`store: degraded`) as long as some key still works: keys
    are off, the static admin key is set, or this process verified stored keys before.
    """
    loaded = {name: s.prepared is not None for name, s in state.registry.sources.items()}
    store_up = await state.store.health.probe() and state.store.health.up
    checker = state.authenticator
    keys_work = store_up or not state.settings.auth or checker.has_static_admin or checker.verified_keys > 0
    ready = any(loaded.values()) and keys_work
    # Open to anyone: with keys required it does not name the sources (a key may not see them all).
    shown = {} if state.settings.auth else loaded
    body = Health(
        status=HealthStatus.READY if ready else HealthStatus.NOT_READY,
        sources=shown,
        store=state.store.health.state,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)

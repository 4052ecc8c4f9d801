"""GET /cache: hit counters of the route and verdict caches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from app.api.auth import ADMIN_RESPONSES, admin_only
from app.api.state import AppState, get_state
from app.routing.caching.route_cache import CachedRoutes

router = APIRouter(tags=["cache"], dependencies=[Depends(admin_only)], responses=ADMIN_RESPONSES)


class CacheStats(BaseModel):
    """One cache's counters since start."""

    hits: int = Field(description="answers served from the cache", examples=[120])
    misses: int = Field(description="lookups that found nothing", examples=[40])
    coalesced: int = Field(description="requests that joined an identical one in flight", examples=[3])
    size: int = Field(description="entries held now", examples=[40])
    capacity: int = Field(description="most entries held (0: cache off)", examples=[1024])


class CacheReport(BaseModel):
    """The service's caches: whole routes, and per-chunk LM verdicts (only with an LM judge)."""

    routes: CacheStats | None = Field(default=None, description="the route cache (whole answers)")
    verdicts: CacheStats | None = Field(
        default=None, description="the per-chunk verdict cache; null without an LM judge"
    )


@router.get("/cache", operation_id="getCacheStats", summary="Cache hit counters", response_model=CacheReport)
async def cache_stats(state: Annotated[AppState, Depends(get_state)]) -> CacheReport:
    """Hits, misses, coalesced requests and sizes of the route and verdict caches."""
    if not isinstance(state.router, CachedRoutes):
        return CacheReport()
    counters = state.router.counters()
    return CacheReport.model_validate(
        {name: CacheStats.model_validate(c, from_attributes=True) for name, c in counters.items()}
    )

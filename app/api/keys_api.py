"""API keys over HTTP, for admin keys: create (the secret shown once), list, revoke."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import ADMIN_RESPONSES, admin_only
from app.api.problems import (
    BODY_ERRORS,
    NotFoundError,
    StoreUnavailableError,
    UnprocessableError,
    problem_responses,
)
from app.api.schemas import PlainText
from app.api.state import AppState, get_state
from app.api.store_calls import store_call
from app.auth.keys import grant_problem

router = APIRouter(
    prefix="/keys", tags=["keys"], dependencies=[Depends(admin_only)], responses=ADMIN_RESPONSES
)

SourceName = Annotated[PlainText, Field(min_length=1, max_length=200)]
TablePattern = Annotated[PlainText, Field(min_length=1, max_length=400)]


class KeyCreateRequest(BaseModel):
    """A key to create."""

    # Strict, as RouteRequest: JSON false is not the number 0, nor "60" the integer 60.
    model_config = ConfigDict(extra="forbid", strict=True)

    name: PlainText = Field(
        min_length=1, max_length=200, description="who or what the key is for", examples=["bi-frontend"]
    )
    grants: dict[SourceName, Annotated[list[TablePattern], Field(min_length=1, max_length=100)]] = Field(
        default_factory=dict,
        max_length=100,
        description="per source, the tables the key may see: patterns schema.table with a glob per part "
        '(* ? [seq]), a part holding a dot, quote or glob character double-quoted ("a.b".x, "p*".*); '
        "['*']: every table",
        examples=[{"sales": ["public.*", "analytics.fact_*"]}],
    )
    admin: bool = Field(
        default=False, description="an admin key sees every source and manages keys", examples=[False]
    )
    rate_limit: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="routes per minute; null: the service default; 0: unlimited",
        examples=[60],
    )
    daily_tokens: int | None = Field(
        default=None,
        ge=0,
        le=10**12,
        description="LM tokens per UTC day; null: the service default; 0: unlimited",
        examples=[1_000_000],
    )
    daily_usd: float | None = Field(
        default=None,
        ge=0,
        le=1e9,
        allow_inf_nan=False,
        description="dollars of LM tokens (at the service's LM prices) per UTC day; null: the service "
        "default; 0: no dollar budget",
        examples=[5.0],
    )


class KeyInfo(BaseModel):
    """A key as listed: never its secret."""

    id: str = Field(description="the key's id", examples=["key_3f2a9c0d1b7e"])
    name: str = Field(description="who or what the key is for", examples=["bi-frontend"])
    prefix: str = Field(description="the first characters of the secret", examples=["trk_Xq3v9Lk2"])
    grants: dict[str, list[str]] = Field(
        description="per source, the table patterns the key may see",
        examples=[{"sales": ["public.*", "analytics.fact_*"]}],
    )
    admin: bool = Field(description="sees every source and manages keys", examples=[False])
    rate_limit: int | None = Field(description="routes per minute; null: the service default", examples=[60])
    daily_tokens: int | None = Field(
        description="LM tokens per UTC day; null: the service default", examples=[1_000_000]
    )
    daily_usd: float | None = Field(
        description="dollars of LM tokens per UTC day; null: the service default", examples=[5.0]
    )
    created_at: datetime = Field(description="when the key was created", examples=["2026-01-31T12:00:00Z"])
    revoked_at: datetime | None = Field(description="when the key was revoked; null: active", examples=[None])


class KeyList(BaseModel):
    """Every key, revoked ones too."""

    keys: list[KeyInfo] = Field(description="the keys, oldest first")


class KeyCreated(BaseModel):
    """A new key and its secret: shown this once, stored only as a digest."""

    key: KeyInfo = Field(description="the key as it is listed")
    secret: str = Field(
        description="the API key to send as `Authorization: Bearer <secret>`",
        examples=["trk_5cLq0R2b1t3mQx8vJ7pA9sK4dF6gH1jZ2wE0yU3iO5n"],
    )


@router.post(
    "",
    operation_id="createKey",
    summary="Create an API key",
    status_code=HTTPStatus.CREATED,
    response_model=KeyCreated,
    responses=problem_responses(*BODY_ERRORS, UnprocessableError, StoreUnavailableError),
)
async def create_key(body: KeyCreateRequest, state: Annotated[AppState, Depends(get_state)]) -> KeyCreated:
    """A new key with its grants and limits; the response is the only place its secret appears.

    A key that is not an admin key needs a grant, and every grant a source the service has (422).
    """
    problem = grant_problem(body.grants, admin=body.admin, sources=state.registry.sources)
    if problem is not None:
        raise UnprocessableError(problem, invalid_params=[{"name": "body.grants", "reason": problem}])
    with store_call():
        new = await state.keys.create(
            body.name,
            body.grants,
            admin=body.admin,
            rate_limit=body.rate_limit,
            daily_tokens=body.daily_tokens,
            daily_usd=body.daily_usd,
        )
    return KeyCreated(key=KeyInfo.model_validate(asdict(new.record)), secret=new.secret)


@router.get(
    "",
    operation_id="listKeys",
    summary="List the API keys",
    response_model=KeyList,
    responses=problem_responses(StoreUnavailableError),
)
async def list_keys(state: Annotated[AppState, Depends(get_state)]) -> KeyList:
    """Every key with its grants and limits, never a secret."""
    with store_call():
        keys = await state.keys.list_all()
    return KeyList(keys=[KeyInfo.model_validate(asdict(k)) for k in keys])


@router.delete(
    "/{key_id}",
    operation_id="revokeKey",
    summary="Revoke an API key",
    response_model=KeyInfo,
    responses=problem_responses(NotFoundError, StoreUnavailableError),
)
async def revoke_key(key_id: str, state: Annotated[AppState, Depends(get_state)]) -> KeyInfo:
    """Revoke the key: it stops working at once on this process, within TABLEROUTER_KEY_CACHE_S elsewhere."""
    with store_call():
        record = await state.keys.revoke(key_id[:32])
    if record is None:
        raise NotFoundError(f"unknown key {key_id!r}")
    state.authenticator.forget(record.id)
    return KeyInfo.model_validate(asdict(record))

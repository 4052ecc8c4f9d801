"""Errors as RFC 9457 problem details.

Exception tree::

    AppError                    status and title travel with the class
    ├── BadRequestError         400  the body is not what the API takes
    ├── UnauthorizedError       401  no API key, or not a valid one (with WWW-Authenticate)
    ├── ForbiddenError          403  the key is valid but not an admin key
    ├── NotFoundError           404  unknown source (or other resource), or one the key may not see
    ├── PayloadTooLargeError    413  body over the configured limit
    ├── UnsupportedMediaError   415  a body that is not application/json
    ├── UnprocessableError      422  well-formed but invalid values
    ├── TooManyRoutesError      429  too many routes wait for the LM (with Retry-After)
    ├── RateLimitedError        429  the key's routes per minute are used up (with Retry-After)
    ├── TokenBudgetError        429  the key's LM tokens of the day are spent (with Retry-After)
    ├── SourceEmptyError        409  the source's schemas hold no table: nothing to route over
    ├── SourceReadError         502  a refresh could not read the warehouse (with error_kind)
    ├── NotReadyError           503  no catalog snapshot yet for the source (with Retry-After)
    └── StoreUnavailableError   503  the service's own store cannot be read or written

Every handler renders ``application/problem+json``; clients never see a stack trace.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.api.security_headers import secure_headers

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://tablerouter.dev/problems/"
PROBLEM_REF = "#/components/schemas/Problem"


class ProblemType(StrEnum):
    """The closed set of problem types this API returns."""

    BAD_REQUEST = "bad-request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    VALIDATION = "validation-error"
    NOT_FOUND = "not-found"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    PAYLOAD_TOO_LARGE = "payload-too-large"
    REQUEST_TIMEOUT = "request-timeout"
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
    TOO_MANY_ROUTES = "too-many-routes"
    RATE_LIMITED = "rate-limited"
    TOKEN_BUDGET_SPENT = "token-budget-spent"  # noqa: S105 (a problem type, not a secret)
    NOT_READY = "not-ready"
    SOURCE_EMPTY = "source-empty"
    SOURCE_READ_FAILED = "source-read-failed"
    STORE_UNAVAILABLE = "store-unavailable"
    INTERNAL = "internal-error"


def _problem_type_schema(schema: dict[str, Any]) -> None:
    # The closed set of type URIs, with names generators turn into enum members (not URL soup).
    schema["enum"] = [TYPE_BASE + kind.value for kind in ProblemType]
    schema["x-enum-varnames"] = [kind.name for kind in ProblemType]


class InvalidParam(BaseModel):
    """One invalid field of the request."""

    name: str = Field(description="where the invalid value is, e.g. body.top_k", examples=["body.top_k"])
    reason: str = Field(
        description="what is wrong with it", examples=["Input should be less than or equal to 500"]
    )


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = Field(
        description="URI naming the problem type (one of a closed set)",
        examples=[TYPE_BASE + "not-found"],
        json_schema_extra=_problem_type_schema,
    )
    title: str = Field(description="short summary of the problem type", examples=["Not Found"])
    status: int = Field(description="HTTP status code", examples=[404])
    detail: str = Field(description="what went wrong in this request", examples=["unknown source 'sales'"])
    instance: str | None = Field(default=None, description="the request path", examples=["/route"])
    invalid_params: list[InvalidParam] | None = Field(
        default=None,
        description="the invalid fields, for validation errors",
        examples=[[{"name": "body.top_k", "reason": "Input should be less than or equal to 500"}]],
    )
    retry_after: int | None = Field(
        default=None, description="seconds to wait before retrying (as in Retry-After)", examples=[2]
    )


class AppError(Exception):
    """Base of the service's errors; each subclass carries its HTTP status."""

    status: ClassVar[HTTPStatus] = HTTPStatus.INTERNAL_SERVER_ERROR
    problem: ClassVar[ProblemType] = ProblemType.INTERNAL
    sends_retry_after: ClassVar[bool] = False

    def __init__(self, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class BadRequestError(AppError):
    """The request body is not valid JSON."""

    status = HTTPStatus.BAD_REQUEST
    problem = ProblemType.BAD_REQUEST


class UnauthorizedError(AppError):
    """No API key, or one that is unknown or revoked: send `Authorization: Bearer <key>`."""

    status = HTTPStatus.UNAUTHORIZED
    problem = ProblemType.UNAUTHORIZED


class ForbiddenError(AppError):
    """The API key is valid but may not do this (an admin key is needed)."""

    status = HTTPStatus.FORBIDDEN
    problem = ProblemType.FORBIDDEN


class NotFoundError(AppError):
    """An unknown source (or other resource)."""

    status = HTTPStatus.NOT_FOUND
    problem = ProblemType.NOT_FOUND


class PayloadTooLargeError(AppError):
    """The request body is over the configured size limit."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    problem = ProblemType.PAYLOAD_TOO_LARGE


class RequestTimeoutError(AppError):
    """The request body did not arrive within the configured body timeout; the connection is closed."""

    status = HTTPStatus.REQUEST_TIMEOUT
    problem = ProblemType.REQUEST_TIMEOUT


class UnsupportedMediaError(AppError):
    """The request body is not application/json."""

    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    problem = ProblemType.UNSUPPORTED_MEDIA_TYPE


class UnprocessableError(AppError):
    """Well-formed but invalid values (fields, source choice, schemas)."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    problem = ProblemType.VALIDATION


class TooManyRoutesError(AppError):
    """Too many routes already wait for the LM backend; retry after the Retry-After header."""

    status = HTTPStatus.TOO_MANY_REQUESTS
    problem = ProblemType.TOO_MANY_ROUTES
    sends_retry_after = True


class RateLimitedError(AppError):
    """The API key's routes per minute are used up; retry after the Retry-After header."""

    status = HTTPStatus.TOO_MANY_REQUESTS
    problem = ProblemType.RATE_LIMITED
    sends_retry_after = True


class TokenBudgetError(AppError):
    """The API key's LM tokens for the day are spent; retry after the Retry-After header."""

    status = HTTPStatus.TOO_MANY_REQUESTS
    problem = ProblemType.TOKEN_BUDGET_SPENT
    sends_retry_after = True


class SourceEmptyError(AppError):
    """The source's schemas hold no table (see its `schemas` and `exclude_schemas`)."""

    status = HTTPStatus.CONFLICT
    problem = ProblemType.SOURCE_EMPTY


class SourceReadError(AppError):
    """The warehouse could not be read; `error_kind` says why, the old snapshot keeps serving."""

    status = HTTPStatus.BAD_GATEWAY
    problem = ProblemType.SOURCE_READ_FAILED


class NotReadyError(AppError):
    """The source has no catalog snapshot yet (loading, or failed and retried); retry after Retry-After."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    problem = ProblemType.NOT_READY
    sends_retry_after = True


class StoreUnavailableError(AppError):
    """The service's own store cannot be read or written right now; retry later."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    problem = ProblemType.STORE_UNAVAILABLE


def problem_body(
    status: HTTPStatus, kind: ProblemType, detail: str, instance: str | None, **extra: Any
) -> dict[str, Any]:
    """The JSON object of a problem (also embedded in batch results and stream events)."""
    body = Problem(
        type=TYPE_BASE + kind.value,
        title=status.phrase,
        status=status.value,
        detail=detail,
        instance=instance,
    ).model_dump(exclude_none=True)
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def error_body(exc: AppError, instance: str | None) -> dict[str, Any]:
    """The problem object of an ``AppError``."""
    return problem_body(exc.status, exc.problem, exc.detail, instance, **exc.extra)


def internal_error_body(instance: str | None) -> dict[str, Any]:
    """The problem object of an unexpected failure (no details leak to the client)."""
    return problem_body(HTTPStatus.INTERNAL_SERVER_ERROR, ProblemType.INTERNAL, "internal error", instance)


def problem_response(
    status: HTTPStatus, kind: ProblemType, detail: str, instance: str | None, **extra: Any
) -> JSONResponse:
    """A problem+json response."""
    body = problem_body(status, kind, detail, instance, **extra)
    headers = {"Retry-After": str(extra["retry_after"])} if "retry_after" in extra else None
    return JSONResponse(body, status_code=status.value, media_type=PROBLEM_JSON, headers=headers)


def problem_responses(*errors: type[AppError], validation: bool = True) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry declaring these errors (and 422, unless not ``validation``).

    Only ``application/problem+json`` is declared, with the ``Problem`` schema, so generated
    clients parse each error into a typed object. Errors sharing a status share one entry.
    """
    content = {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}
    declared: dict[int | str, dict[str, Any]] = {}
    if validation:
        declared[HTTPStatus.UNPROCESSABLE_ENTITY.value] = {
            "description": UnprocessableError.__doc__,
            "content": content,
        }
    for error in errors:
        description = error.__doc__ or error.status.phrase
        previous = declared.get(error.status.value)
        if previous is not None and error is not UnprocessableError:
            description = f"{previous['description']} Or: {description}"
        declared[error.status.value] = {**(previous or {}), "description": description, "content": content}
        if error.sends_retry_after:
            declared[error.status.value]["headers"] = {
                "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
            }
    return declared


BODY_ERRORS: tuple[type[AppError], ...] = (
    BadRequestError,
    RequestTimeoutError,
    PayloadTooLargeError,
    UnsupportedMediaError,
)
"""What any route that reads a JSON body can answer: not JSON, too slow, too large, another media type."""


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    allowed = set()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.add(method)
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error the app can raise as problem+json."""

    async def on_app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        response = problem_response(exc.status, exc.problem, exc.detail, request.url.path, **exc.extra)
        response.headers.update(exc.headers)
        return response

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body_errors = any(e["loc"] and e["loc"][0] == "body" for e in errors)
        # FastAPI reads a body as JSON only when the request says so; without a Content-Type the
        # body stays bytes and fails validation, which is a media problem (415), not a value one.
        if body_errors and media_type != "application/json" and not media_type.endswith("+json"):
            given = f"not {media_type}" if media_type else "and the request has no Content-Type"
            return problem_response(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                ProblemType.UNSUPPORTED_MEDIA_TYPE,
                f"the request body must be application/json, {given}",
                request.url.path,
            )
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem_response(
                HTTPStatus.BAD_REQUEST,
                ProblemType.BAD_REQUEST,
                "the request body is not valid JSON",
                request.url.path,
            )
        params = [InvalidParam(name=_field_name(e["loc"]), reason=e["msg"]).model_dump() for e in errors]
        detail = "; ".join(f"{p['name']}: {p['reason']}" for p in params)
        return problem_response(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            ProblemType.VALIDATION,
            detail,
            request.url.path,
            invalid_params=params,
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = HTTPStatus(exc.status_code)
        kind = {
            HTTPStatus.NOT_FOUND: ProblemType.NOT_FOUND,
            HTTPStatus.METHOD_NOT_ALLOWED: ProblemType.METHOD_NOT_ALLOWED,
        }.get(
            status,
            ProblemType.BAD_REQUEST if status < HTTPStatus.INTERNAL_SERVER_ERROR else ProblemType.INTERNAL,
        )
        response = problem_response(status, kind, str(exc.detail), request.url.path)
        # Starlette's own headers matter: a 405 must say which methods are allowed (Allow).
        response.headers.update(exc.headers or {})
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            response.headers["Allow"] = _allowed_methods(request)
        return response

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        response = problem_response(
            HTTPStatus.INTERNAL_SERVER_ERROR, ProblemType.INTERNAL, "internal error", request.url.path
        )
        # Starlette answers an unhandled error outside every middleware: the headers go on here.
        secure_headers(response.headers, request.url.path)
        return response

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)

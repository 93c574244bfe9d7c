"""RFC 9457 problem responses: the one place where errors become HTTP."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from csms.errors import Conflict, CsmsError, InvalidInput, NotFound

PROBLEM_MEDIA_TYPE = "application/problem+json"

_STATUS_BY_ERROR: tuple[tuple[type[CsmsError], HTTPStatus], ...] = (
    (NotFound, HTTPStatus.NOT_FOUND),
    (Conflict, HTTPStatus.CONFLICT),
    (InvalidInput, HTTPStatus.UNPROCESSABLE_ENTITY),
)


def problem(
    status: HTTPStatus,
    *,
    title: str | None = None,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or status.phrase,
        "status": int(status),
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(
        body, status_code=int(status), media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(CsmsError)
    async def domain_error(request: Request, exc: CsmsError) -> JSONResponse:
        status = next(
            (code for kind, code in _STATUS_BY_ERROR if isinstance(exc, kind)),
            HTTPStatus.BAD_REQUEST,
        )
        return problem(status, title=exc.title, detail=exc.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(
        request: Request, exc: RequestValidationError
    ) -> JSONResponse:
        errors = [
            {"location": list(error["loc"]), "message": error["msg"]}
            for error in exc.errors()
        ]
        return problem(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            title="Invalid request",
            detail="The request does not match what this endpoint expects.",
            errors=errors,
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        status = HTTPStatus(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else None
        headers = dict(exc.headers) if exc.headers else None
        return problem(status, detail=detail, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            detail="The CSMS failed to handle this request; it has been logged.",
        )

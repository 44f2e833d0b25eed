"""One table from errors to HTTP codes, and one error body for every refusal.

Every error the server sends is a STAC/OGC error document,
``{"code": …, "description": …}``: arcodex's errors, stac-fastapi's, FastAPI's
request validation (400, not 422, as STAC asks), Starlette's HTTP errors (404,
405 …) and, last, anything unforeseen (500, logged with its traceback).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from arcodex.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    QueryError,
    ValidationError,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["add_error_handlers", "error_for", "error_response", "status_codes"]

logger = logging.getLogger("arcodex.server")


def status_codes() -> dict[type[Exception], int]:
    """Each error class the server answers, and its HTTP status."""
    from stac_fastapi.api.errors import DEFAULT_STATUS_CODES

    from arcodex.server._download import TooLarge
    from arcodex.server._identity import Forbidden
    from arcodex.server._published import UnreadableDataset

    return {
        **DEFAULT_STATUS_CODES,
        QueryError: 400,
        ValidationError: 400,
        NotFoundError: 404,
        ConflictError: 409,
        AuthError: 401,
        Forbidden: 403,
        TooLarge: 413,
        UnreadableDataset: 503,
    }


def error_response(status: int, code: str, description: str) -> Response:
    """The error document as a JSON response."""
    from starlette.responses import JSONResponse

    return JSONResponse({"code": code, "description": description}, status_code=status)


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error with an error document (replacing stac-fastapi's handlers)."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    for exc_class, status in status_codes().items():
        app.add_exception_handler(exc_class, _known(status))
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)


def error_for(request: Request, exc: Exception) -> Response:
    """The answer to ``exc`` that :func:`add_error_handlers`' handlers give, for a route
    answered outside FastAPI's routing (raw Zarr's fast path)."""
    from starlette.exceptions import HTTPException

    if isinstance(exc, HTTPException):
        return _http_error(request, exc)
    codes = status_codes()
    for cls in type(exc).__mro__:
        if cls in codes:
            known: Response = _known(codes[cls])(request, exc)
            return known
    return _internal_error(request, exc)


def _known(status: int) -> Any:
    def handler(request: Request, exc: Exception) -> Response:
        if status >= 500:
            logger.error("%s %s: %s", request.method, request.url.path, exc, exc_info=exc)
        response = error_response(status, type(exc).__name__, str(exc))
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    return handler


def _invalid_request(request: Request, exc: Exception) -> Response:
    errors: list[dict[str, Any]] = list(getattr(exc, "errors", list)())
    parts = []
    for error in errors[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    description = "; ".join(parts) + more if parts else "the request is not valid"
    return error_response(400, "InvalidParameterValue", description)


def _http_error(request: Request, exc: Exception) -> Response:
    status = int(getattr(exc, "status_code", 500))
    detail = getattr(exc, "detail", None) or str(exc)
    codes = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge"}
    response = error_response(status, codes.get(status, "InvalidParameterValue"), str(detail))
    for key, value in (getattr(exc, "headers", None) or {}).items():
        response.headers[key] = value
    return response


def _internal_error(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(
        500, "InternalServerError", f"the server failed ({type(exc).__name__}); see its log"
    )

"""Errors in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with the
status each cause deserves: what the client sent is a 4xx, never a 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llamabind.errors import (
    ContextOverflowError,
    GrammarError,
    InvalidTextError,
    LlamaError,
    QueueFullError,
    StateError,
    StructuredOutputError,
    TemplateError,
    UnsupportedError,
)

logger = logging.getLogger("llamabind.server")


class APIError(Exception):
    """An error answered to the client.

    Args:
        status: The HTTP status.
        message: What was wrong and what to do.
        type: OpenAI's error type ("invalid_request_error", "authentication_error", ...).
        param: The request field at fault, if one is.
        code: A short machine-readable code.
        headers: Extra response headers (e.g. ``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body, in OpenAI's shape."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        """The JSON response with the status and headers."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """A 400 answer about ``param``."""
    return APIError(400, message, param=param, code=code)


def from_engine(exc: BaseException, retry_after_s: int, param: str | None = None) -> APIError:
    """The answer to an exception raised by the engine for one request.

    Args:
        exc: What the engine raised.
        retry_after_s: ``Retry-After`` for a full queue or a busy engine.
        param: The request field the input errors are attributed to.
    """
    retry = {"Retry-After": str(retry_after_s)}
    if isinstance(exc, QueueFullError):
        return APIError(429, str(exc), type="rate_limit_error", code="queue_full", headers=retry)
    if isinstance(exc, StateError):
        return APIError(503, str(exc), type="server_error", code="busy", headers=retry)
    if isinstance(exc, ContextOverflowError):
        return bad_request(str(exc), param, "context_length_exceeded")
    if isinstance(exc, GrammarError):
        return bad_request(str(exc), "response_format", "invalid_schema")
    if isinstance(exc, (TemplateError, UnsupportedError, StructuredOutputError, InvalidTextError)):
        return bad_request(str(exc), param)
    if isinstance(exc, (ValueError, TypeError)) and not isinstance(exc, LlamaError):
        return bad_request(str(exc), param)
    logger.error("request failed", exc_info=exc)
    return APIError(500, f"the server failed: {type(exc).__name__}: {exc}", type="server_error")


def _field(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or None


async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    loc = tuple(first.get("loc", ()))
    param = _field(loc)
    if first.get("type") == "json_invalid":
        return bad_request(f"the body is not valid JSON: {first.get('msg', '')}").response()
    if first.get("type") == "missing" and param is None:
        return bad_request("the request needs a JSON body").response()
    message = f"{param}: {first.get('msg', 'invalid value')}" if param else first.get("msg", "")
    return bad_request(message, param).response()


async def _api_error(_: Request, exc: APIError) -> JSONResponse:
    return exc.response()


async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status_code)
    error = APIError(
        exc.status_code, str(exc.detail), type=kind, code=code, headers=dict(exc.headers or {})
    )
    return error.response()


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error", exc_info=exc)
    return APIError(500, f"the server failed: {type(exc).__name__}", type="server_error").response()


def install(app: FastAPI) -> None:
    """Makes every error of ``app`` answer in OpenAI's shape."""
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(APIError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)

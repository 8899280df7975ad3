"""API errors in the OpenAI error format: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_budget",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 502: "model_error", 503: "unavailable"}


class ApiError(Exception):
    """An error returned to the client as-is (status code, one clear message, the field at fault)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.extra = extra or {}

    def body(self) -> dict:
        error = {"message": self.message, "type": ERROR_TYPES.get(self.status, "api_error"),
                 "param": self.param, "code": self.code, **self.extra}
        return {"error": error}


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "messages", 0, "role")`` -> ``messages[0].role``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not str(part).startswith(("function-", "tagged-union", "str", "list[", "int", "float")):
            text += ("." if text else "") + str(part)
    return text or "body"


def validation_error(exc: RequestValidationError | Any, prefix: str = "") -> ApiError:
    """FastAPI's 422 (or a pydantic error) as a 400 naming the first field at fault."""
    first = exc.errors()[0]
    path = field_path(first.get("loc", ()))
    if prefix:
        path = prefix if path == "body" else f"{prefix}.{path}"
    if first.get("type") == "json_invalid":
        return ApiError(400, f"the request body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})",
                        param="body", code="invalid_json")
    message = first.get("msg", "invalid value")
    if first.get("type") == "missing":
        message = "this field is required"
    return ApiError(400, f"{path}: {message}", param=path, code=first.get("type"))


async def api_error_handler(_request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def request_validation_handler(_request: Request, exc: RequestValidationError) -> JSONResponse:
    error = validation_error(exc)
    return JSONResponse(error.body(), status_code=error.status)

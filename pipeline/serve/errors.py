"""The service's one error shape, ``{"error": {"code": ..., "message": ...}}``, for every error a request can meet.

A client can fix what it sent from the message alone: one line, naming the field (``texts[2]``, ``temperature``)
and what to send instead. FastAPI's own errors (validation, malformed JSON, unknown paths, wrong methods) are
rewritten into that shape here; bad input gets a 4xx, never a 500. The ``code`` is for programs: a client asks
for the token on ``unauthorized``, polls ``/readyz`` on ``not_ready``, retries later on ``overloaded``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from pipeline.errors import PipelineError
from pipeline.serve.batching import Overloaded

log = logging.getLogger("pipeline.serve")

STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type", 422: "invalid_request",
                429: "too_many_requests", 503: "unavailable"}


def one_line(message: str, limit: int = 500) -> str:
    """``message`` on one line, shortened, with characters JSON cannot carry (lone surrogates) escaped."""
    flat = " ".join(str(message).split())
    flat = flat.encode("utf-8", "backslashreplace").decode("utf-8")
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The service's error body: ``{"error": {"code", "message"}}`` with ``status``."""
    return JSONResponse({"error": {"code": code, "message": one_line(message)}}, status_code=status, headers=headers)


class ApiError(Exception):
    """An error the client can fix: ``status`` (4xx or 503), a machine-readable ``code``, a one-line message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def add_error_handlers(app: FastAPI) -> None:
    """Answer every exception a request can raise with :func:`error_response`; an unexpected one (a bug) is
    logged with its traceback and answered 500 ``internal``."""
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> Response:
        headers = {"Retry-After": "1"} if error.status == 503 else None
        return error_response(error.status, error.code, error.message, headers)

    @app.exception_handler(PipelineError)
    async def pipeline_error(request: Request, error: PipelineError) -> Response:
        return error_response(422, "invalid_request", str(error))

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, error: Overloaded) -> Response:
        return error_response(503, "overloaded", f"{error}; retry in a moment", {"Retry-After": "1"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        message = str(error.detail)
        if error.status_code == 404:
            message = f"no such path: {request.method} {request.url.path}; the API is described at /docs"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs for its method"
        elif error.status_code == 400 and message == "There was an error parsing the body":
            message = "body: not valid UTF-8 JSON; send a JSON object encoded as UTF-8"
        return error_response(error.status_code, STATUS_CODES.get(error.status_code, "error"), message,
                              getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        problems = error.errors()
        if any(problem.get("type") == "json_invalid" for problem in problems):
            return error_response(400, "malformed_json", f"body: malformed JSON ({json_problem(problems)}); send "
                                                         "a JSON object such as {\"texts\": [\"...\"]}")
        message = validation_message(problems[0])
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
        return error_response(422, "invalid_request", message)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, "internal", f"internal error ({type(error).__name__}); the server log has "
                                               "the details")


def json_problem(problems: list[dict]) -> str:
    problem = next(problem for problem in problems if problem.get("type") == "json_invalid")
    where = problem.get("loc", ("body", 0))
    detail = (problem.get("ctx") or {}).get("error", "invalid JSON")
    return f"{detail} at character {where[-1]}" if isinstance(where[-1], int) else str(detail)


def validation_message(problem: dict[str, Any]) -> str:
    """One pydantic problem as ``where: what, got value``, e.g. ``texts[2]: Input should be a valid string``."""
    location = [part for part in problem.get("loc", ()) if part != "body"]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
    where = where or "body"
    kind = problem.get("type", "")
    message = str(problem.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind == "missing":
        return f"{where}: required" if where != "body" else "body: missing; send a JSON object (see /docs)"
    if kind == "extra_forbidden":
        return f"{where}: unknown field; see /docs for this endpoint's fields"
    if kind in ("model_attributes_type", "dict_type", "model_type") and where == "body":
        return "body: expected a JSON object such as {\"texts\": [\"...\"]} with Content-Type: application/json"
    given = problem.get("input")
    if isinstance(given, (str, int, float, bool)) or given is None:
        shown = repr(given) if not isinstance(given, str) or len(given) <= 40 else repr(given[:40] + "...")
        message += f", got {shown}"
    return one_line(f"{where}: {message}")

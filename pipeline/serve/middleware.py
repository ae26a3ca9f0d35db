"""What wraps every request of the HTTP service before FastAPI sees it: the request log line, the bearer
token and the body size limit (plain ASGI middleware, so that a rejected request costs no body read).

Every error they answer has the service's one shape (:func:`pipeline.serve.errors.error_response`).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.exceptions import HTTPException

from pipeline.serve.errors import error_response

log = logging.getLogger("pipeline.serve")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestLog:
    """One log line per request: method, path, status, latency in milliseconds (``pipeline.serve``, INFO)."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_and_note(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            log.info("%s %s %d %.1f ms", scope["method"], scope["path"], status,
                     (time.perf_counter() - started) * 1000)


class BearerToken:
    """Require ``Authorization: Bearer <token>`` on every path but the ``public`` ones.

    The token is compared with :func:`hmac.compare_digest` (time independent of where it differs). A missing
    or wrong token gets 401 with ``WWW-Authenticate: Bearer`` before the body is read.
    """

    def __init__(self, app: App, token: str, public: Iterable[str], public_prefixes: Iterable[str] = ()) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.public = frozenset(public)
        self.public_prefixes = tuple(public_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or self._is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value
                break
        if not hmac.compare_digest(given, self.expected):
            message = ("missing bearer token; send the header 'Authorization: Bearer <token>' with the token of "
                       "--token-file" if not given else
                       "wrong bearer token; send the token of the server's --token-file")
            response = error_response(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _is_public(self, path: str) -> bool:
        return path in self.public or path.startswith(self.public_prefixes)


class BodyTooLarge(HTTPException):
    """Raised from the body stream once it passes the limit; FastAPI lets HTTPExceptions through its body
    parsing, so the client gets 413 with the service's error body."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes; send fewer or shorter texts "
                              "(or start the server with a larger --max-body-bytes)")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413: at once from ``Content-Length``, or as soon as a
    streamed (chunked) body passes it, never reading more than the limit."""

    def __init__(self, app: App, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            response = (error_response(400, "bad_request", "invalid Content-Length header")
                        if not declared.isdigit() else
                        error_response(413, "too_large", BodyTooLarge(self.limit).detail))
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited_receive, send)

"""Request bodies bounded before they are read, as pure ASGI middleware.

FastAPI reads a request's whole body before any dependency runs, so neither the token check nor
a size check in a dependency can stop a big body: this middleware sits in front of the app.

- A body is read only from a token holder: the only endpoint that takes one (POST /api/v1/sql)
  needs the token, so a request that carries a body without an accepted token is refused (401 or
  403, as the token check says) before a byte of it is read. (Matching the endpoint instead would
  lean on FastAPI's routing internals, which change between versions; this rule needs none.)
- A declared Content-Length over `api_max_body_bytes` is refused (413) at once.
- A body without one (chunked) is counted as it streams and refused as soon as the count passes
  the limit.

Every refusal closes the connection, so the rest of the body is never taken in.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from optimus.api import auth

CLOSE = {"Connection": "close"}


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a body passes the limit: an HTTPException, so that FastAPI's own
    body reading passes it on as it is (it turns other errors into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes (api_max_body_bytes)", headers=CLOSE)


def _carries_body(headers: Headers) -> bool:
    return headers.get("content-length", "0").strip() != "0" or "transfer-encoding" in headers


class BodyLimit:
    """Pure ASGI middleware: the token check and the size limit of a body, both before it is read.
    `api` is the FastAPI app, for its settings and state."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.api.state.settings
        limit = int(settings.api_max_body_bytes)
        headers = Headers(scope=scope)
        if _carries_body(headers):
            problem = auth.refusal(headers.get("authorization", ""), settings, self.api.state.server)
            if problem is not None:
                status, reason = problem
                extra = auth.BEARER_CHALLENGE if status == 401 else {}
                await JSONResponse(
                    {"detail": f"a request body is read only from a token holder: {reason}"}, status, headers={**extra, **CLOSE}
                )(scope, receive, send)
                return
        declared = headers.get("content-length", "").strip()
        if declared and not declared.isdigit():
            await JSONResponse({"detail": "Content-Length is not a number"}, 400, headers=CLOSE)(scope, receive, send)
            return
        if declared and (len(declared) > 18 or int(declared) > limit):  # 19+ digits: past any limit (and int() of thousands fails)
            await JSONResponse({"detail": BodyTooLarge(limit).detail}, 413, headers=CLOSE)(scope, receive, send)
            return

        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:
            if started:  # too late for a 413: the connection is dropped instead
                raise
            await JSONResponse({"detail": exc.detail}, 413, headers=CLOSE)(scope, receive, send)

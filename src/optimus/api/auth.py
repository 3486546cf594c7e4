"""Who may see what: personal data needs the bearer token; status and aggregates are open
unless `require_token_for_all` is set. 401 when no token is given, 403 when it is wrong."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from optimus.api.state import ServerState
from optimus.config import Settings

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}
NO_TOKEN_CONFIGURED = (
    "personal data is off on this server until api_token is set in its config (or OPTIMUS_API_TOKEN); "
    "then send it as 'Authorization: Bearer <api_token>'"
)


def refusal(authorization: str, settings: Settings, state: ServerState) -> tuple[int, str] | None:
    """(status, reason) when this Authorization header may not see personal data; None when it may.
    Shared by the dependency and the body-limit middleware (which refuses before reading a body)."""
    scheme, _, token = authorization.partition(" ")
    # the daemon's local token (in its lock file, readable by its owner only) lets local commands in
    accepted = [t for t in (settings.api_token, state.local_token) if t]
    if scheme.lower() != "bearer" or not token.strip():
        if not accepted:  # no token would help: say what turns personal data on
            return 401, NO_TOKEN_CONFIGURED
        return 401, "this endpoint can return personal data: send 'Authorization: Bearer <api_token>'"
    if not accepted:
        return 403, NO_TOKEN_CONFIGURED
    if not any(hmac.compare_digest(token.strip().encode(), t.encode()) for t in accepted):
        return 403, "wrong token"
    return None


def check_token(request: Request) -> None:
    """Refuse (401 or 403) a request that may not see personal data: for an endpoint that serves it
    only for some of its arguments (a per-learner research table, say)."""
    problem = refusal(request.headers.get("authorization", ""), request.app.state.settings, request.app.state.server)
    if problem is not None:
        status, reason = problem
        raise HTTPException(status, reason, headers=BEARER_CHALLENGE if status == 401 else None)


async def require_token(request: Request) -> None:
    """Dependency for anything that can return personal data (async: it blocks on nothing, so it
    takes no worker thread from the endpoints)."""
    check_token(request)


async def open_access(request: Request) -> None:
    """Dependency for status and aggregate endpoints: open unless require_token_for_all is set."""
    if request.app.state.settings.require_token_for_all:
        await require_token(request)

"""Who may see what: personal data needs the bearer token; status and aggregates are open
unless `require_token_for_all` is set. 401 when no token is given, 403 when it is wrong."""
from __future__ import annotations

import hmac

from fastapi import HTTPException, Request


def _accepted(request: Request) -> list[str]:
    settings = request.app.state.settings
    state = request.app.state.server
    # the daemon's local token (in its lock file, readable by its owner only) lets local commands in
    return [t for t in (settings.api_token, state.local_token) if t]


def require_token(request: Request) -> None:
    """Dependency for anything that can return personal data."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "this endpoint can return personal data: send 'Authorization: Bearer <api_token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    accepted = _accepted(request)
    if not accepted:
        raise HTTPException(403, "personal data is not served: no api_token is configured on this server")
    if not any(hmac.compare_digest(token.strip().encode(), t.encode()) for t in accepted):
        raise HTTPException(403, "wrong token")


def open_access(request: Request) -> None:
    """Dependency for status and aggregate endpoints: open unless require_token_for_all is set."""
    if request.app.state.settings.require_token_for_all:
        require_token(request)

"""Talk to a running daemon over its API, for the commands that cannot open a warehouse it holds."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from optimus.config import Settings
from optimus.daemon import lock_path, running_daemon
from optimus.errors import OptimusError
from optimus.warehouse.base import QUERY_MAX_ROWS


class DaemonUnreachable(OptimusError):
    """A daemon holds the warehouse but its API does not answer."""


class DaemonClient:
    """A small JSON client (standard library only) for one daemon's API."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        url = self.base_url + path + (("?" + urllib.parse.urlencode(params)) if params else "")
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("detail") or exc.reason
            except (ValueError, AttributeError):
                detail = exc.reason
            raise OptimusError(f"the daemon at {self.base_url} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DaemonUnreachable(f"a daemon holds the warehouse but its API at {self.base_url} does not answer ({reason})") from None

    # -- what the commands need ------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The same shape as `optimus status --json` computes locally."""
        services = self.request("/api/v1/services")["services"]
        return {
            "services": {
                s["name"]: {
                    "queued": s["queued"],
                    "running": s["running"],
                    "done": s["done"],
                    "failed": s["failed"],
                    "last_run": _iso_t(s["lastcompletedate"]),
                }
                for s in services
            }
        }

    def failed_files(self) -> list[dict[str, Any]]:
        return self._files({"state": "failed"})

    def files_worth_a_look(self) -> list[dict[str, Any]]:
        """Failed, damaged, or with quarantined lines or coerced values (ledger.ATTENTION), failed first."""
        return self._files({"attention": "true"})

    def _files(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """Every page of /api/v1/files for this filter."""
        files: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.request("/api/v1/files", {**query, "limit": 1000, "offset": offset})
            files.extend(page["files"])
            offset += len(page["files"])
            if not page["files"] or offset >= page["total"]:
                return files

    def sql(self, query: str, limit: int = QUERY_MAX_ROWS) -> tuple[list[str], list[list[Any]], str | None]:
        """The columns, rows and note (where a capped answer was cut, else None) of one read-only query."""
        result = self.request("/api/v1/sql", body={"sql": query, "limit": limit})
        return result["columns"], result["rows"], result.get("note")

    def newdata(self) -> str:
        return str(self.request("/newdata")["response"])


def _iso_t(text: str | None) -> str | None:
    return text.replace(" ", "T") if text else None


def remote_daemon(settings: Settings) -> DaemonClient | None:
    """A client for the daemon holding this warehouse, or None when no daemon holds it."""
    info = running_daemon(settings)
    if info is not None:
        return DaemonClient(info.base_url, info.local_token)
    path = lock_path(settings)
    if path.exists() and not _readable(path):
        # a daemon of another user (e.g. a system service): its configured address and token
        host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "") else settings.api_host
        return DaemonClient(f"http://{host}:{settings.api_port}", settings.api_token)
    return None


def _readable(path: Any) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False

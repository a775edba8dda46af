"""A local fake of the Cloudflare API v4 endpoints the preflight calls: a real HTTP server on 127.0.0.1,
answering from an `Account` the test shapes (token, its policies, plan, zone, Gateway, service tokens).
Paths and answer shapes follow the API reference; anything else answers 404 as Cloudflare does."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from infra.components.cloudflare.gateway_dlp import PREDEFINED_PROFILES
from infra.prerequisites import ACCOUNT, TOKEN_PERMISSIONS

TOKEN = "cf-test-token-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
TOKEN_ID = "ed17574386854bf78a67040be0a770b0"


def policies_granting(permissions=TOKEN_PERMISSIONS, account_id: str = "", zone_id: str = "") -> list[dict]:
    """Token policies as the API returns them: account permissions on the account, zone permissions on
    every zone of the account (the dashboard's "All zones from an account", a nested resource map)."""

    def groups(scope: str) -> list[dict]:
        return [{"id": f"pg-{i}", "name": p.api_name} for i, p in enumerate(permissions) if p.scope == scope]

    account_key = f"com.cloudflare.api.account.{account_id}"
    return [
        {
            "id": "p1",
            "effect": "allow",
            "permission_groups": groups(ACCOUNT),
            "resources": {account_key: "*"},
        },
        {
            "id": "p2",
            "effect": "allow",
            "permission_groups": groups("zone"),
            "resources": {account_key: {"com.cloudflare.api.account.zone.*": "*"}},
        },
    ]


@dataclass
class Account:
    account_id: str
    zone_id: str
    zone_name: str
    team: str
    token_status: str = "active"
    token_expires_on: str | None = None
    policies: list[dict] = field(default_factory=list)
    policies_readable: bool = True
    zero_trust: bool = True
    dlp_addon: bool = True
    subscriptions: list[str] | None = field(default_factory=lambda: ["workers_paid"])
    tls_decrypt: bool = True
    service_tokens: list[dict] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def _envelope(result: Any = None, status: int = 200, code: int | None = None, message: str = "") -> tuple:
    errors = [] if code is None else [{"code": code, "message": message}]
    return status, {"success": code is None, "errors": errors, "messages": [], "result": result}


class _Handler(BaseHTTPRequestHandler):
    account: Account

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlparse(self.path)
        path = url.path.removeprefix("/client/v4")
        self.account.requests.append(path)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status, body = _envelope(status=401, code=1000, message="Invalid API Token")
        else:
            status, body = self._route(path, parse_qs(url.query))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, path: str, query: dict[str, list[str]]) -> tuple:
        a = self.account
        acct = f"/accounts/{a.account_id}"
        if path == "/user/tokens/verify":
            return _envelope({"id": TOKEN_ID, "status": a.token_status, "expires_on": a.token_expires_on})
        if path == f"/user/tokens/{TOKEN_ID}":
            if not a.policies_readable:
                return _envelope(status=403, code=9109, message="Unauthorized to access requested resource")
            return _envelope({"id": TOKEN_ID, "status": a.token_status, "policies": a.policies})
        if path == f"{acct}/gateway":
            if not a.zero_trust:
                return _envelope(status=400, code=2010, message="account is not a Zero Trust account")
            return _envelope({"id": a.account_id, "gateway_tag": "f174e90afafe4643bbbc4a0ed4fc8415"})
        if path == f"{acct}/access/organizations":
            if not a.zero_trust:
                return _envelope(status=404, code=12130, message="access.api.error.not_found")
            return _envelope({"name": a.team, "auth_domain": f"{a.team}.cloudflareaccess.com"})
        if path == f"{acct}/dlp/profiles":
            profiles = [{"id": p.id, "name": p.name, "type": "predefined"} for p in PREDEFINED_PROFILES]
            if a.dlp_addon:
                profiles.append(
                    {
                        "id": "c8b8a0e1-0000-4000-8000-000000000001",
                        "name": "Credentials and Secrets",
                        "type": "predefined",
                    }
                )
            return _envelope(profiles)
        for profile in PREDEFINED_PROFILES:
            if path == f"{acct}/dlp/profiles/predefined/{profile.id}":
                return _envelope({"id": profile.id, "name": profile.name, "entries": []})
        if path == f"{acct}/subscriptions":
            if a.subscriptions is None:
                return _envelope(status=403, code=9109, message="Unauthorized to access requested resource")
            return _envelope(
                [{"id": f"sub-{i}", "rate_plan": {"id": plan}} for i, plan in enumerate(a.subscriptions)]
            )
        if path == f"/zones/{a.zone_id}":
            return _envelope(
                {
                    "id": a.zone_id,
                    "name": a.zone_name,
                    "status": "active",
                    "account": {"id": a.account_id, "name": "test"},
                }
            )
        if path == f"{acct}/gateway/configuration":
            return _envelope({"settings": {"tls_decrypt": {"enabled": a.tls_decrypt}}})
        if path == f"{acct}/access/service_tokens":
            names = query.get("name")
            tokens = [t for t in a.service_tokens if not names or t["name"] in names]
            return _envelope(tokens)
        return _envelope(status=404, code=7003, message="Could not route to " + path)


class CloudflareFake:
    def __init__(self, account: Account):
        handler = type("Handler", (_Handler,), {"account": account})
        self.account = account
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/client/v4"

    def __enter__(self) -> CloudflareFake:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

"""A small read-only client of Cloudflare's API v4 (GET only), standard library only.

The token goes in the Authorization header and nowhere else: no answer, error or message built here
contains it. The base URL is injectable (`CLOUDFLARE_API_BASE_URL`) so tests can point it at a local fake.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
BASE_URL_ENV = "CLOUDFLARE_API_BASE_URL"
TIMEOUT_SECONDS = 20


@dataclass(frozen=True)
class Answer:
    status: int  # HTTP status; 0 when no answer arrived
    success: bool
    result: Any = None
    errors: list[str] = field(default_factory=list)

    @property
    def problem(self) -> str:
        """The API's own error text (or the HTTP status), for a failure line."""
        return "; ".join(self.errors) or f"HTTP {self.status}"


class CloudflareApi:
    def __init__(self, base_url: str, token: str):
        self._base_url = base_url.rstrip("/")
        self._token = token

    def get(self, path: str, **query: str) -> Answer:
        url = f"{self._base_url}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self._token}"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return _answer(response.status, response.read())
        except urllib.error.HTTPError as error:
            return _answer(error.code, error.read())
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            return Answer(0, False, errors=[f"no answer from {self._base_url}: {reason}"])


def _answer(status: int, body: bytes) -> Answer:
    try:
        envelope = json.loads(body or b"{}")
    except ValueError:
        return Answer(status, False, errors=[f"HTTP {status}, not a JSON answer"])
    if not isinstance(envelope, dict):
        return Answer(status, False, errors=[f"HTTP {status}, unexpected answer"])
    errors = [
        f"[{item.get('code')}] {item.get('message')}" if isinstance(item, dict) else str(item)
        for item in envelope.get("errors") or []
    ]
    success = bool(envelope.get("success")) and 200 <= status < 300
    return Answer(status, success, envelope.get("result"), errors)

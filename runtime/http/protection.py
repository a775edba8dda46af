"""ECS task scale-in protection: a task that has work is not picked when the service scales in.

ECS gives every task an agent endpoint (`ECS_AGENT_URI`); `PUT $ECS_AGENT_URI/task-protection/v1/state`
with `{"ProtectionEnabled": true, "ExpiresInMinutes": N}` protects the task, `false` releases it. The
runtime protects itself as soon as it has work, renews while the work lasts (the expiry is the safety
net should the runtime hang or die protected), and releases after `idle_s` without work, so a short
pause between requests does not flap it. The agent failing is logged and retried; serving goes on.
"""

import asyncio
import json
import logging
import os
import time
import urllib.error
import urllib.request

from runtime.engine.load import LoadTracker

log = logging.getLogger(__name__)

AGENT_URI_VARIABLE = "ECS_AGENT_URI"
TICK_SECONDS = 0.2
RETRY_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 5.0


def agent_uri_from_environment() -> str | None:
    """Set by ECS (agent 1.66+) in every task; unset anywhere else, where protection is a no-op."""
    return os.environ.get(AGENT_URI_VARIABLE) or None


class ProtectionRefused(Exception):
    pass


def put_protection(agent_uri: str, enabled: bool, expires_minutes: int) -> None:
    """One call to the agent; ProtectionRefused (or an OSError) when it did not take effect."""
    body: dict = {"ProtectionEnabled": enabled}
    if enabled:
        body["ExpiresInMinutes"] = expires_minutes
    request = urllib.request.Request(
        f"{agent_uri.rstrip('/')}/task-protection/v1/state",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="PUT",
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            answer = response.read()
    except urllib.error.HTTPError as error:
        raise ProtectionRefused(f"HTTP {error.code}: {error.read()[:200]!r}") from None
    # The agent answers 200 with a `failure` or `error` member when ECS refused the change.
    try:
        parsed = json.loads(answer or b"{}")
    except ValueError:
        parsed = {}
    if isinstance(parsed, dict) and (parsed.get("failure") or parsed.get("error")):
        raise ProtectionRefused(json.dumps(parsed)[:200])


class TaskProtection:
    def __init__(self, load: LoadTracker, agent_uri: str, expires_minutes: int, idle_s: float):
        self._load = load
        self._agent_uri = agent_uri
        self._expires_minutes = expires_minutes
        self._idle_s = idle_s
        # Renew at half the expiry so protection never lapses while the work lasts.
        self._renew_after_s = expires_minutes * 60 / 2
        self._protected_at: float | None = None
        self._idle_since: float | None = None
        self._next_try = 0.0

    async def run(self) -> None:
        while True:
            await self.step(time.monotonic())
            await asyncio.sleep(TICK_SECONDS)

    async def step(self, now: float) -> None:
        if self._load.busy:
            self._idle_since = None
            due = self._protected_at is None or now - self._protected_at >= self._renew_after_s
            if due and await self._put(True, now):
                self._protected_at = now
            return
        if self._idle_since is None:
            self._idle_since = now
        idle_long_enough = now - self._idle_since >= self._idle_s
        if self._protected_at is not None and idle_long_enough and await self._put(False, now):
            self._protected_at = None

    async def _put(self, enabled: bool, now: float) -> bool:
        if now < self._next_try:
            return False
        try:
            await asyncio.to_thread(put_protection, self._agent_uri, enabled, self._expires_minutes)
        except (OSError, ProtectionRefused) as error:
            self._next_try = now + RETRY_SECONDS
            log.warning(
                "task scale-in protection %s failed (retrying in %.0fs): %s",
                "enabling" if enabled else "clearing",
                RETRY_SECONDS,
                error,
            )
            return False
        log.info("task scale-in protection %s", "enabled" if enabled else "cleared")
        return True

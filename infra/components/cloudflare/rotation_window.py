"""When the previous secret of a rotated credential stops being accepted.

Cloudflare rotates an Access service token's secret when its `client_secret_version` goes up, and
accepts the previous secret until `previous_client_secret_expires_at`; left out, that is "now", so the
Worker would be locked out between the rotation and its own redeploy. The overlap must be a fixed
timestamp (a value computed at every run would show a diff on every run), taken when the version
changes: this dynamic resource records `now + grace` on create and again only when `version` changes,
and keeps it in state otherwise. It calls no API.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult


def _window(props: dict[str, Any]) -> dict[str, Any]:
    ends = datetime.now(UTC) + timedelta(seconds=int(props["grace_seconds"]))
    return {
        "version": props["version"],
        "grace_seconds": props["grace_seconds"],
        "previous_secret_expires_at": ends.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class RotationWindowProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"rotation-v{props['version']}", outs=_window(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only a new version opens a new window; a changed grace applies from the next rotation on.
        return DiffResult(changes=olds.get("version") != news.get("version"), replaces=[])

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_window(news))


class RotationWindow(pulumi.dynamic.Resource):
    previous_secret_expires_at: pulumi.Output[str]

    def __init__(
        self, name: str, version: int, grace_seconds: int, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(
            RotationWindowProvider(),
            name,
            {"version": version, "grace_seconds": grace_seconds, "previous_secret_expires_at": None},
            opts,
        )

"""The Worker's Access service token: its expiry is exported, and raising `serviceTokenSecretVersion`
rotates its secret, with the previous one kept valid for a fixed window and the Worker's secret binding
following the new secret in the same update."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from infra.components.cloudflare.rotation_window import RotationWindowProvider
from infra.components.cloudflare.zero_trust import PREVIOUS_SECRET_GRACE_SECONDS
from pulumi_offline import ROTATION_WINDOW_ENDS_AT, SERVICE_TOKEN_EXPIRES_AT

TOKEN = "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken"
SCRIPT = "cloudflare:index/workersScript:WorkersScript"


def secret_binding(run, name: str) -> str:
    return next(b["text"] for b in run.one(SCRIPT).input("bindings") if b["name"] == name)


def rotation_windows(run):
    return [r for r in run.of_type("pulumi-python:dynamic:Resource") if "grace_seconds" in r.inputs]


def test_the_expiry_is_exported_in_plain_text(stack_run):
    assert stack_run.outputs["accessServiceTokenExpiresAt"] == SERVICE_TOKEN_EXPIRES_AT
    assert "accessServiceTokenExpiresAt" not in stack_run.secret_outputs


def test_a_token_never_rotated_sends_no_version(dev_run):
    token = dev_run.one(TOKEN)
    # The provider wants the version and the previous secret's expiry together; 1 is its default.
    assert token.input("clientSecretVersion") is None
    assert token.input("previousClientSecretExpiresAt") is None
    assert rotation_windows(dev_run) == []


def test_bumping_the_version_rotates_the_secret_and_the_worker_follows(dev_run, choices_run):
    before, after = dev_run.one(TOKEN), choices_run.one(TOKEN)
    assert after.input("clientSecretVersion") == 2
    (window,) = rotation_windows(choices_run)
    assert (window.input("version"), window.input("grace_seconds")) == (2, PREVIOUS_SECRET_GRACE_SECONDS)
    assert after.input("previousClientSecretExpiresAt") == ROTATION_WINDOW_ENDS_AT
    assert window.urn in after.property_dependencies["previousClientSecretExpiresAt"]
    assert before.urn == after.urn  # the same token, rotated in place: no new client id
    assert secret_binding(choices_run, "CF_ACCESS_CLIENT_ID") == secret_binding(
        dev_run, "CF_ACCESS_CLIENT_ID"
    )
    old_secret = secret_binding(dev_run, "CF_ACCESS_CLIENT_SECRET")
    new_secret = secret_binding(choices_run, "CF_ACCESS_CLIENT_SECRET")
    assert new_secret.startswith("SECRET-access-client-secret-") and new_secret != old_secret
    assert after.urn in choices_run.one(SCRIPT).property_dependencies["bindings"]


def test_the_window_is_taken_once_per_version():
    provider = RotationWindowProvider()
    earliest = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=24)
    created = provider.create({"version": 2, "grace_seconds": 24 * 3600})
    ends = datetime.strptime(created.outs["previous_secret_expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    )
    assert earliest <= ends <= datetime.now(UTC) + timedelta(hours=24)
    # Later runs with the same version keep the recorded time; only a new version opens a new window.
    assert provider.diff("w", created.outs, {"version": 2, "grace_seconds": 24 * 3600}).changes is False
    assert provider.diff("w", created.outs, {"version": 2, "grace_seconds": 3600}).changes is False
    bumped = provider.diff("w", created.outs, {"version": 3, "grace_seconds": 24 * 3600})
    assert bumped.changes is True and bumped.replaces == []
    updated = provider.update("w", created.outs, {"version": 3, "grace_seconds": 24 * 3600})
    assert (
        updated.outs["version"] == 3
        and updated.outs["previous_secret_expires_at"] >= created.outs["previous_secret_expires_at"]
    )

import pytest

from infra.policy.model import ACCESS_APPLICATION, TUNNEL_CONFIG
from infra.policy.rules.access import access_applications_have_policies, origin_behind_access
from tests.policy.conftest import res, violations


def app(name="origin-app", policies=({"id": "p1", "precedence": 1},), **props):
    return res(ACCESS_APPLICATION, name, {"type": "self_hosted", "policies": list(policies), **props})


def tunnel(*hostnames):
    ingresses = [{"hostname": h, "service": "http://localhost:8000"} for h in hostnames]
    return res(
        TUNNEL_CONFIG,
        "origin-config",
        {"config": {"ingresses": ingresses + [{"service": "http_status:404"}]}},
    )


def test_an_application_with_a_policy_passes():
    assert violations(access_applications_have_policies, app(domain="gpu.example.com")) == []


def test_an_application_without_policies_fails():
    [message] = violations(access_applications_have_policies, app(policies=(), domain="gpu.example.com"))
    assert "'origin-app' has no policy" in message


@pytest.mark.parametrize(
    "protected_by",
    [
        {"domain": "gpu.example.com"},
        {"domain": "*.example.com"},
        {"selfHostedDomains": ["other.example.com", "gpu.example.com"]},
        {"destinations": [{"type": "public", "uri": "gpu.example.com"}]},
    ],
)
def test_a_tunnel_hostname_behind_an_application_passes(protected_by):
    assert violations(origin_behind_access, tunnel("gpu.example.com"), app(**protected_by)) == []


@pytest.mark.parametrize(
    "apps",
    [
        [],
        [app(domain="api.example.com")],
        [app(domain="gpu.example.com/admin")],  # only one path of the host
    ],
)
def test_a_tunnel_hostname_outside_every_application_fails(apps):
    [message] = violations(origin_behind_access, tunnel("gpu.example.com"), *apps)
    assert "gpu.example.com" in message and "not behind any" in message

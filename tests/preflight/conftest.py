"""Fixtures of the preflight tests: a copy of the stack files with test ids, the Cloudflare fake, and
moto's real server on loopback for AWS (its Service Quotas backend knows only VPC quotas, so the EC2
vCPU quota is added to that backend, behind moto's own HTTP handling)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from moto.server import ThreadedMotoServer
from moto.servicequotas.models import ServiceQuotasBackend

from infra import REPO_ROOT
from infra.config.stack_files import project_file
from tests.preflight.cloudflare_fake import TOKEN, Account, CloudflareFake, policies_granting

ACCOUNT_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
ZONE_ID = "0f9e8d7c6b5a49382716f5e4d3c2b1a0"
ZONE_NAME = "example.com"  # the stack files' hostnames are under it
TEAM = "steadytext-test"
PROJECT = project_file()["name"]
# Values for the stack files' REPLACE_WITH_… placeholders (the operator's own ids).
PLACEHOLDER_VALUES = {
    "accountId": ACCOUNT_ID,
    "zoneId": ZONE_ID,
    "accessTeamName": TEAM,
    "dockerHubUsername": "steadytexttest",
}


def write_stack(root: Path, stack: str, overrides: dict[str, object] | None = None) -> Path:
    """Pulumi.yaml and Pulumi.<stack>.yaml in `root`, the placeholders filled in, then `overrides`
    (project keys by short name, provider keys qualified, e.g. `aws:region`)."""
    shutil.copy(REPO_ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    document = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())
    config = document["config"]
    for key, declared in (project_file()["config"] or {}).items():
        default = declared.get("default") if isinstance(declared, dict) else declared
        value = config.get(f"{PROJECT}:{key}", default)
        if isinstance(value, str) and value.startswith("REPLACE_WITH_"):
            assert key in PLACEHOLDER_VALUES, f"the preflight tests need a test value for {key}"
            config[f"{PROJECT}:{key}"] = PLACEHOLDER_VALUES[key]
    for key, value in (overrides or {}).items():
        config[key if ":" in key else f"{PROJECT}:{key}"] = value
    (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    return root


@pytest.fixture
def account() -> Account:
    """A Cloudflare account where every check passes; tests take things away."""
    return Account(
        account_id=ACCOUNT_ID,
        zone_id=ZONE_ID,
        zone_name=ZONE_NAME,
        team=TEAM,
        policies=policies_granting(account_id=ACCOUNT_ID, zone_id=ZONE_ID),
    )


@pytest.fixture
def cloudflare(account, monkeypatch):
    with CloudflareFake(account) as fake:
        monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", fake.base_url)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
        yield fake


@pytest.fixture(scope="session")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class VcpuQuota:
    """The EC2 On-Demand vCPU quotas moto's Service Quotas backend answers (by quota code)."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {"L-DB2E81BA": 64.0, "L-417A185B": 384.0}


@pytest.fixture
def vcpu_quota(monkeypatch) -> VcpuQuota:
    quotas = VcpuQuota()
    original = ServiceQuotasBackend.get_service_quota

    def get_service_quota(self, service_code: str, quota_code: str):
        if service_code == "ec2" and quota_code in quotas.values:
            return {
                "ServiceCode": "ec2",
                "QuotaCode": quota_code,
                "QuotaName": "Running On-Demand instances",
                "Value": quotas.values[quota_code],
                "Unit": "None",
                "Adjustable": True,
                "GlobalQuota": False,
            }
        return original(self, service_code, quota_code)

    monkeypatch.setattr(ServiceQuotasBackend, "get_service_quota", get_service_quota)
    return quotas


@pytest.fixture
def aws(moto_endpoint, vcpu_quota, monkeypatch, tmp_path) -> VcpuQuota:
    """boto3's standard chain pointed at moto: test keys, no profile or config file of this machine."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    return vcpu_quota

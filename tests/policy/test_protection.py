import pytest

from infra.policy.model import D1_DATABASE, KV_NAMESPACE, QUEUE, R2_BUCKET, WORKERS_SCRIPT, WORKFLOW
from infra.policy.rules.protection import stateful_resources_protected
from tests.policy.conftest import res, violations

STATEFUL = [
    D1_DATABASE,
    KV_NAMESPACE,
    R2_BUCKET,
    QUEUE,
    WORKFLOW,
    "aws:s3/bucket:Bucket",
    "aws:s3/bucketV2:BucketV2",
]


@pytest.mark.parametrize("type_", STATEFUL)
def test_protected_stateful_resources_pass(type_):
    assert violations(stateful_resources_protected, res(type_, "data", protect=True)) == []


@pytest.mark.parametrize("type_", STATEFUL)
def test_unprotected_stateful_resources_fail(type_):
    [message] = violations(stateful_resources_protected, res(type_, "data"))
    assert "'data'" in message and "protect=True" in message


def test_stateless_resources_need_no_protection():
    assert violations(stateful_resources_protected, res(WORKERS_SCRIPT, "worker")) == []


def test_a_stack_that_does_not_require_protection_passes_unprotected_state():
    found = violations(
        stateful_resources_protected, res(D1_DATABASE, "db"), config={"requireProtection": False}
    )
    assert found == []

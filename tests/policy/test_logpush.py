from infra.policy.model import LOGPUSH_JOB, WORKERS_SCRIPT
from infra.policy.rules.logpush import logpush_jobs_exist
from tests.policy.conftest import res, violations

DESTINATION = "s3://audit-bucket/{DATE}?region=us-east-1"


def job(dataset, **props):
    return res(
        LOGPUSH_JOB, dataset, {"dataset": dataset, "destinationConf": DESTINATION, "enabled": True, **props}
    )


def worker(logpush=True):
    return res(WORKERS_SCRIPT, "edge-script", {"scriptName": "edge", "logpush": logpush})


def test_jobs_for_worker_and_access_pass():
    assert violations(logpush_jobs_exist, worker(), job("workers_trace_events"), job("access_requests")) == []


def test_a_missing_or_disabled_job_fails():
    found = violations(
        logpush_jobs_exist, worker(), job("workers_trace_events"), job("access_requests", enabled=False)
    )
    assert found == ["no enabled Logpush job with dataset access_requests (Zero Trust Access requests)"]
    assert len(violations(logpush_jobs_exist, worker())) == 2


def test_a_worker_without_logpush_fails():
    [message] = violations(
        logpush_jobs_exist, worker(logpush=False), job("workers_trace_events"), job("access_requests")
    )
    assert "'edge-script' does not set logpush=true" in message

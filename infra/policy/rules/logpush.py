"""Audit trail: the Worker's trace events and Access requests are pushed to the audit bucket."""

from __future__ import annotations

from pulumi_policy import ReportViolation, StackValidationArgs, StackValidationPolicy

from infra.policy.model import LOGPUSH_JOB, WORKERS_SCRIPT, of_type

REQUIRED_DATASETS = {
    "workers_trace_events": "the Worker's trace events",
    "access_requests": "Zero Trust Access requests",
}


def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    enabled = {
        job.props.get("dataset")
        for job in of_type(args.resources, LOGPUSH_JOB)
        if job.props.get("enabled", True) is not False
    }
    for dataset, what in REQUIRED_DATASETS.items():
        if dataset not in enabled:
            report_violation(f"no enabled Logpush job with dataset {dataset} ({what})", None)
    for script in of_type(args.resources, WORKERS_SCRIPT):
        if script.props.get("logpush") is not True:
            report_violation(
                f"Worker '{script.name}' does not set logpush=true, so its trace events never reach "
                "the Logpush job",
                script.urn,
            )


logpush_jobs_exist = StackValidationPolicy(
    name="logpush-jobs-exist",
    description="Enabled Logpush jobs exist for Worker trace events and Access requests.",
    validate=validate,
)

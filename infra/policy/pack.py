"""Every guardrail of the pack, in the order they are reported."""

from infra.policy.rules.access import access_applications_have_policies, origin_behind_access
from infra.policy.rules.buckets import s3_buckets_encrypted_and_private
from infra.policy.rules.gpu_ingress import gpu_hosts_no_inbound
from infra.policy.rules.logpush import logpush_jobs_exist
from infra.policy.rules.protection import stateful_resources_protected
from infra.policy.rules.queues import queues_wired
from infra.policy.rules.stack_outputs import no_secret_in_plain_outputs
from infra.policy.rules.warm_tasks import gpu_tasks_stay_warm
from infra.policy.rules.worker_secrets import worker_secrets_bound_as_secrets

PACK_NAME = "steadytext-edge-guardrails"

POLICIES = [
    gpu_hosts_no_inbound,
    gpu_tasks_stay_warm,
    stateful_resources_protected,
    worker_secrets_bound_as_secrets,
    access_applications_have_policies,
    origin_behind_access,
    logpush_jobs_exist,
    s3_buckets_encrypted_and_private,
    queues_wired,
    no_secret_in_plain_outputs,
]

"""The batch pipeline as the program declares it (issue 15): the batch bucket, the Queues with their
dead-letter queue, the Worker's consumers and Workflow, the R2 inbox notification, all read from
edge/wrangler.jsonc's batch block, and protected in prod. Runs with the block added to the real
wrangler.jsonc (tests/infra/conftest.py `BATCH_PIPELINE_BLOCK`) and without it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from infra.components.cloudflare.edge_queues import BUCKET_NOTIFICATIONS, OBJECT_CREATE, queue_names
from infra.components.cloudflare.edge_worker import ConsumerTypeError, consumer_settings
from infra.config.stack_files import project_file
from infra.wrangler_config import (
    LOCAL_RESOURCE_PREFIX,
    WranglerConfigError,
    deployed_name,
    load_wrangler_config,
)
from tests.infra.conftest import BATCH_PIPELINE_BLOCK, without_batch_pipeline
from tests.infra.test_cloudflare_program import snake_case_keys

CF = "cloudflare:index"
QUEUE = f"{CF}/queue:Queue"
CONSUMER = f"{CF}/queueConsumer:QueueConsumer"
WORKFLOW = f"{CF}/workflow:Workflow"
NOTIFICATION = f"{CF}/r2BucketEventNotification:R2BucketEventNotification"
R2 = f"{CF}/r2Bucket:R2Bucket"
R2_LIFECYCLE = f"{CF}/r2BucketLifecycle:R2BucketLifecycle"
SCRIPT = f"{CF}/workersScript:WorkersScript"
PIPELINE_TYPES = (QUEUE, CONSUMER, WORKFLOW, NOTIFICATION)


def prefix_of(run) -> str:
    return run.one(SCRIPT).input("scriptName")


def queue(run, role: str):
    return next(q for q in run.of_type(QUEUE) if q.input("queueName") == f"{prefix_of(run)}-{role}")


def consumer_of(run, role: str):
    [found] = [
        c for c in run.of_type(CONSUMER) if c.property_dependencies["queueId"] == [queue(run, role).urn]
    ]
    return found


def binding(run, name: str) -> dict:
    return next(b for b in run.one(SCRIPT).input("bindings") if b["name"] == name)


def test_the_block_equals_wrangler_jsonc_where_the_worker_declares_it():
    """Once the Worker's batch code lands, its wrangler.jsonc entries must be the ones tested here."""
    wrangler = load_wrangler_config()
    block = BATCH_PIPELINE_BLOCK
    names = {b["binding"] for b in [*block["r2_buckets"], *block["queues"]["producers"], *block["workflows"]]}
    consumed = {c["queue"] for c in block["queues"]["consumers"]}
    queues = wrangler.get("queues", {})
    declared = [
        *[b for b in wrangler.get("r2_buckets", []) if b["binding"] in names],
        *[p for p in queues.get("producers", []) if p["binding"] in names],
        *[c for c in queues.get("consumers", []) if c["queue"] in consumed],
        *[w for w in wrangler.get("workflows", []) if w["binding"] in names],
    ]
    expected = [*block["r2_buckets"], *block["queues"]["producers"], *block["queues"]["consumers"]]
    expected += block["workflows"]
    assert declared in ([], expected)


def test_every_queue_deploys_under_the_stack_prefix(batch_run):
    prefix = prefix_of(batch_run)
    assert sorted(q.input("queueName") for q in batch_run.of_type(QUEUE)) == [
        f"{prefix}-batch-dead-letters",
        f"{prefix}-batch-inbox",
        f"{prefix}-batch-lines",
    ]
    assert queue_names(BATCH_PIPELINE_BLOCK) == [
        "steadytext-batch-dead-letters",
        "steadytext-batch-inbox",
        "steadytext-batch-lines",
    ]


def test_the_lines_consumer_has_wranglers_settings_and_the_dead_letter_queue(batch_run):
    consumer = consumer_of(batch_run, "batch-lines")
    assert consumer.input("type") == "worker"
    assert consumer.input("scriptName") == prefix_of(batch_run)
    assert consumer.property_dependencies["scriptName"] == [batch_run.one(SCRIPT).urn]
    assert consumer.input("settings") == {
        "batchSize": 10,
        "maxWaitTimeMs": 5000,
        "maxRetries": 5,
        "retryDelay": 30,
    }
    assert consumer.input("deadLetterQueue") == f"{prefix_of(batch_run)}-batch-dead-letters"
    assert consumer.property_dependencies["deadLetterQueue"] == [queue(batch_run, "batch-dead-letters").urn]


def test_the_inbox_and_the_dead_letters_are_consumed_with_the_queues_defaults(batch_run):
    for role in ("batch-inbox", "batch-dead-letters"):
        consumer = consumer_of(batch_run, role)
        assert consumer.input("settings") == {} and consumer.input("deadLetterQueue") is None
    # lines, inbox and dead letters (the Worker files a dead line as failed, so its batch can end)
    assert len(batch_run.of_type(CONSUMER)) == 3


def test_the_workflow_is_the_workers_class_under_the_bound_name(batch_run):
    workflow = batch_run.one(WORKFLOW)
    assert workflow.input("workflowName") == f"{prefix_of(batch_run)}-batch"
    assert workflow.input("className") == "BatchWorkflow"
    assert workflow.property_dependencies["scriptName"] == [batch_run.one(SCRIPT).urn]
    assert binding(batch_run, "BATCH_WORKFLOW") == {
        "name": "BATCH_WORKFLOW",
        "type": "workflow",
        "workflowName": workflow.input("workflowName"),
        "className": "BatchWorkflow",
    }


def test_the_worker_produces_to_the_lines_queue_and_binds_the_batch_bucket(batch_run):
    lines = queue(batch_run, "batch-lines")
    assert binding(batch_run, "BATCH_LINES") == {
        "name": "BATCH_LINES",
        "type": "queue",
        "queueName": lines.input("queueName"),
    }
    bucket = next(b for b in batch_run.of_type(R2) if b.name == "edge-storage-bucket-batch")
    assert bucket.input("name") == f"{prefix_of(batch_run)}-batch"
    assert binding(batch_run, "BATCH_FILES") == {
        "name": "BATCH_FILES",
        "type": "r2_bucket",
        "bucketName": bucket.input("name"),
    }
    assert batch_run.outputs["workerBuckets"] == {"BATCH_FILES": bucket.input("name")}
    # The queues and the bucket exist before the script that binds them is uploaded.
    script = batch_run.one(SCRIPT)
    assert {lines.urn, bucket.urn} <= set(script.property_dependencies["bindings"])
    lifecycles = [
        lc for lc in batch_run.of_type(R2_LIFECYCLE) if lc.input("bucketName") == bucket.input("name")
    ]
    assert [lc.input("rules")[0]["id"] for lc in lifecycles] == ["abort-incomplete-multipart-uploads"]


def test_a_jsonl_file_under_inbox_notifies_the_inbox_queue(batch_run):
    notification = batch_run.one(NOTIFICATION)
    assert notification.input("bucketName") == f"{prefix_of(batch_run)}-batch"
    assert notification.property_dependencies["queueId"] == [queue(batch_run, "batch-inbox").urn]
    [rule] = notification.input("rules")
    assert rule["actions"] == list(OBJECT_CREATE) == ["PutObject", "CompleteMultipartUpload", "CopyObject"]
    assert (rule["prefix"], rule["suffix"]) == ("inbox/", ".jsonl")
    assert [(n.bucket, n.queue) for n in BUCKET_NOTIFICATIONS] == [
        ("steadytext-batch", "steadytext-batch-inbox")
    ]


def test_prod_protects_and_retains_the_batch_state(batch_prod_run):
    stateful = [*batch_prod_run.of_type(QUEUE), batch_prod_run.one(WORKFLOW)]
    stateful += [b for b in batch_prod_run.of_type(R2) if b.name == "edge-storage-bucket-batch"]
    assert len(stateful) == 5
    for resource in stateful:
        assert resource.protect and resource.retain_on_delete, resource.name
    # Consumers and the notification are wiring, replaced freely.
    for resource in [*batch_prod_run.of_type(CONSUMER), batch_prod_run.one(NOTIFICATION)]:
        assert not resource.protect, resource.name


def test_dev_keeps_the_batch_pipeline_disposable(batch_dev_run):
    assert [r.name for r in batch_dev_run.resources if r.protect or r.retain_on_delete] == []


def test_every_pipeline_argument_is_known_to_the_provider_schema(batch_run):
    for resource in batch_run.resources:
        if resource.type in PIPELINE_TYPES:
            assert snake_case_keys(resource.inputs) == [], resource.name


@pytest.fixture(scope="module")
def bare_run(run_program):
    return run_program("prod", wrangler=without_batch_pipeline(load_wrangler_config()))


def test_without_the_block_no_pipeline_resource_is_declared(bare_run):
    assert [r.name for r in bare_run.resources if r.type in PIPELINE_TYPES] == []
    assert [r.input("name") for r in bare_run.of_type(R2)] == ["steadytext-prod-models"]
    assert "workerBuckets" not in bare_run.outputs


def test_consumer_settings_are_sent_as_wrangler_deploy_sends_them():
    assert consumer_settings({"queue": "q"}) == {}
    assert consumer_settings({"queue": "q", "max_batch_timeout": 0.5, "max_concurrency": 3}) == {
        "max_wait_time_ms": 500,
        "max_concurrency": 3,
    }


def test_a_pull_consumer_is_refused_by_name_not_deployed_as_a_worker_consumer():
    with pytest.raises(ConsumerTypeError, match="consumer of 'steadytext-batch-lines' has type 'http_pull'"):
        consumer_settings({"queue": "steadytext-batch-lines", "type": "http_pull"})


def test_workflow_limits_in_wrangler_reach_the_workflow(run_program, batch_wrangler):
    limited = {
        **batch_wrangler,
        "workflows": [{**batch_wrangler["workflows"][0], "limits": {"steps": 25000}}],
    }
    run = run_program("dev", wrangler=limited)
    assert run.one(WORKFLOW).input("limits") == {"steps": 25000}


def test_local_names_map_to_stack_names_and_others_are_refused():
    assert deployed_name("steadytext-batch-lines", "steadytext-prod") == "steadytext-prod-batch-lines"
    with pytest.raises(WranglerConfigError, match="'batch-lines' must start with 'steadytext'-"):
        deployed_name("batch-lines", "steadytext-prod")
    # Local dev names are what a stack with the default prefix deploys.
    assert project_file()["config"]["resourcePrefix"]["default"] == LOCAL_RESOURCE_PREFIX


@pytest.fixture(scope="module")
def batch_prod_declared(batch_prod_run):
    from infra.plan.evaluate import declared_resources

    return declared_resources("prod", batch_prod_run)


def test_the_policy_pack_passes_the_prod_pipeline_and_bites_when_it_breaks(batch_prod_declared):
    from infra.policy.enforcement import policy_config
    from infra.policy.evaluate import run_policies
    from infra.policy.pack import POLICIES

    config = policy_config("prod", "mandatory")
    wiring = [p for p in POLICIES if p.name in ("queues-wired", "stateful-resources-protected")]
    assert run_policies(batch_prod_declared, wiring, config) == []
    # The inbox consumer gone: R2 would notify a queue nobody reads.
    inbox_queue = next(d for d in batch_prod_declared if d.type == QUEUE and d.name.endswith("batch-inbox"))
    unconsumed = [
        d
        for d in batch_prod_declared
        if not (d.type == CONSUMER and d.property_dependencies["queueId"] == [inbox_queue.urn])
    ]
    [violation] = run_policies(unconsumed, wiring, config)
    assert violation.blocking and "no consumer reads" in violation.message
    # The lines queue unprotected in prod.
    unprotected = [
        replace(d, protect=False) if d.name.endswith("batch-lines") and d.type == QUEUE else d
        for d in batch_prod_declared
    ]
    [violation] = run_policies(unprotected, wiring, config)
    assert violation.blocking and "Queue 'edge-queues-batch-lines'" in violation.message


def test_the_offline_plan_shows_the_pipeline_with_its_protection(batch_prod_run):
    from infra.plan.inventory import build_plan
    from pulumi_offline import PROJECT, TEST_SECRETS

    plan = build_plan(PROJECT, "prod", batch_prod_run, TEST_SECRETS.values())
    shown = {r["name"]: r for r in plan["resources"] if r["type"] in PIPELINE_TYPES}
    assert set(shown) == {
        "edge-queues-batch-lines",
        "edge-queues-batch-inbox",
        "edge-queues-batch-dead-letters",
        "edge-queues-batch-inbox-notification",
        "edge-consumer-batch-lines",
        "edge-consumer-batch-inbox",
        "edge-consumer-batch-dead-letters",
        "edge-workflow-batch",
    }
    assert {name for name, r in shown.items() if r["protect"]} == {
        "edge-queues-batch-lines",
        "edge-queues-batch-inbox",
        "edge-queues-batch-dead-letters",
        "edge-workflow-batch",
    }
    assert shown["edge-consumer-batch-lines"]["properties"]["settings"]["maxWaitTimeMs"] == 5000

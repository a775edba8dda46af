"""No drift between the Worker as developed and tested (`edge/wrangler.jsonc`, docs/interfaces.md) and
the Worker as deployed (the WorkersScript the program declares)."""

from __future__ import annotations

import re

import pytest

from infra import REPO_ROOT
from infra.components.cloudflare.edge_worker import BindingDriftError, worker_bindings
from infra.wrangler_config import deployed_name, load_wrangler_config, parse_jsonc

CF = "cloudflare:index"
SCRIPT = f"{CF}/workersScript:WorkersScript"

# wrangler.jsonc section → the binding type the Cloudflare API uses for it.
WRANGLER_SECTIONS = {
    "d1_databases": ("binding", "d1"),
    "kv_namespaces": ("binding", "kv_namespace"),
    "r2_buckets": ("binding", "r2_bucket"),
    "ratelimits": ("name", "ratelimit"),
}


def wrangler_bindings(wrangler: dict) -> set[tuple[str, str]]:
    expected = {
        (entry[key], kind)
        for section, (key, kind) in WRANGLER_SECTIONS.items()
        for entry in wrangler.get(section, [])
    }
    expected |= {(b["name"], "durable_object_namespace") for b in wrangler["durable_objects"]["bindings"]}
    expected |= {(p["binding"], "queue") for p in wrangler.get("queues", {}).get("producers", [])}
    expected |= {(w["binding"], "workflow") for w in wrangler.get("workflows", [])}
    expected |= {(name, "plain_text") for name in wrangler.get("vars", {})}
    return expected


def interface_secrets() -> set[str]:
    """The Worker's secrets as docs/interfaces.md names them (wrangler keeps secrets out of its file)."""
    row = next(
        line
        for line in (REPO_ROOT / "docs" / "interfaces.md").read_text().splitlines()
        if line.startswith("| secret |")
    )
    return set(re.findall(r"`([A-Z_]+)`", row))


# Bound only where the GPU service scales to zero (the Worker then has a signal region to send to).
SCALE_SIGNAL_SECRETS = {"SCALE_SIGNAL_ACCESS_KEY_ID", "SCALE_SIGNAL_SECRET_ACCESS_KEY"}


def assert_bindings_match(run, wrangler: dict) -> None:
    bindings = run.one(SCRIPT).input("bindings")
    deployed = {(b["name"], b["type"]) for b in bindings}
    scales_to_zero = next(b["text"] for b in bindings if b["name"] == "SCALE_SIGNAL_REGION") != ""
    secrets = interface_secrets() if scales_to_zero else interface_secrets() - SCALE_SIGNAL_SECRETS
    assert interface_secrets() >= SCALE_SIGNAL_SECRETS
    expected = wrangler_bindings(wrangler) | {(s, "secret_text") for s in secrets}
    assert deployed == expected


def test_deployed_bindings_match_wrangler_by_name_and_type(stack_run):
    assert_bindings_match(stack_run, load_wrangler_config())


def test_the_batch_pipelines_bindings_match_wrangler_too(batch_run, batch_wrangler):
    assert_bindings_match(batch_run, batch_wrangler)
    assert {("BATCH_LINES", "queue"), ("BATCH_WORKFLOW", "workflow")} <= wrangler_bindings(batch_wrangler)


def test_every_queue_consumer_and_workflow_of_wrangler_is_deployed_as_declared(batch_run, batch_wrangler):
    """Consumers and Workflows are not bindings: each wrangler.jsonc entry must have its resource."""
    queue_names = {q.urn: q.input("queueName") for q in batch_run.of_type(f"{CF}/queue:Queue")}
    deployed = {
        queue_names[c.property_dependencies["queueId"][0]]: c
        for c in batch_run.of_type(f"{CF}/queueConsumer:QueueConsumer")
    }
    consumers = batch_wrangler["queues"]["consumers"]
    prefix = batch_run.one(SCRIPT).input("scriptName")
    assert set(deployed) == {deployed_name(c["queue"], prefix) for c in consumers}
    for consumer in consumers:
        resource = deployed[deployed_name(consumer["queue"], prefix)]
        settings = resource.input("settings")
        assert settings.get("batchSize") == consumer.get("max_batch_size")
        assert settings.get("maxRetries") == consumer.get("max_retries")
        assert settings.get("retryDelay") == consumer.get("retry_delay")
        assert settings.get("maxConcurrency") == consumer.get("max_concurrency")
        timeout = consumer.get("max_batch_timeout")
        assert settings.get("maxWaitTimeMs") == (None if timeout is None else timeout * 1000)
        dead_letters = consumer.get("dead_letter_queue")
        assert resource.input("deadLetterQueue") == (dead_letters and deployed_name(dead_letters, prefix))
    workflows = {
        w.input("workflowName"): w.input("className") for w in batch_run.of_type(f"{CF}/workflow:Workflow")
    }
    assert workflows == {
        deployed_name(w["name"], prefix): w["class_name"] for w in batch_wrangler["workflows"]
    }


def test_durable_object_and_rate_limit_settings_match_wrangler(stack_run):
    wrangler = load_wrangler_config()
    bindings = {b["name"]: b for b in stack_run.one(SCRIPT).input("bindings")}
    for do in wrangler["durable_objects"]["bindings"]:
        assert bindings[do["name"]]["className"] == do["class_name"]
        assert "scriptName" not in bindings[do["name"]]  # defined in this Worker, not another
    for limit in wrangler["ratelimits"]:
        deployed = bindings[limit["name"]]
        assert deployed["namespaceId"] == str(limit["namespace_id"])
        assert deployed["simple"] == {"limit": limit["simple"]["limit"], "period": limit["simple"]["period"]}


WRANGLER = {
    "d1_databases": [{"binding": "DB"}],
    "kv_namespaces": [{"binding": "CACHE"}],
    "vars": {"A": "1", "B": "2"},
}


def test_a_var_the_program_does_not_set_stops_the_deploy():
    with pytest.raises(BindingDriftError, match=r"vars: declared there but not supplied by infra \['B'\]"):
        worker_bindings(WRANGLER, {"DB": "d1", "CACHE": "kv"}, {"A": "x"}, {})


def test_a_storage_binding_wrangler_lacks_stops_the_deploy():
    with pytest.raises(BindingDriftError, match=r"supplied by infra but not declared \['MODELS'\]"):
        worker_bindings(WRANGLER, {"DB": "d1", "CACHE": "kv", "MODELS": "r2"}, {"A": "x", "B": "y"}, {})


def test_a_queue_producer_infra_does_not_bind_stops_the_deploy():
    wrangler = {**WRANGLER, "queues": {"producers": [{"binding": "LINES", "queue": "steadytext-lines"}]}}
    with pytest.raises(BindingDriftError, match=r"declared there but not supplied by infra \['LINES'\]"):
        worker_bindings(wrangler, {"DB": "d1", "CACHE": "kv"}, {"A": "x", "B": "y"}, {})


def test_jsonc_comments_and_trailing_commas_are_read_like_wrangler_does():
    text = """{
        // a line comment
        "url": "https://example.com/path", /* a block
        comment */ "list": [1, 2,],
        "quoted": "not // a comment",
    }"""
    assert parse_jsonc(text) == {
        "url": "https://example.com/path",
        "list": [1, 2],
        "quoted": "not // a comment",
    }

"""No drift between the Worker as developed and tested (`edge/wrangler.jsonc`, docs/interfaces.md) and
the Worker as deployed (the WorkersScript the program declares)."""

from __future__ import annotations

import re

import pytest

from infra import REPO_ROOT
from infra.components.cloudflare.edge_worker import BindingDriftError, worker_bindings
from infra.wrangler_config import load_wrangler_config, parse_jsonc

SCRIPT = "cloudflare:index/workersScript:WorkersScript"

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


def test_deployed_bindings_match_wrangler_by_name_and_type(stack_run):
    bindings = stack_run.one(SCRIPT).input("bindings")
    deployed = {(b["name"], b["type"]) for b in bindings}
    scales_to_zero = next(b["text"] for b in bindings if b["name"] == "SCALE_SIGNAL_REGION") != ""
    secrets = interface_secrets() if scales_to_zero else interface_secrets() - SCALE_SIGNAL_SECRETS
    assert interface_secrets() >= SCALE_SIGNAL_SECRETS
    expected = wrangler_bindings(load_wrangler_config()) | {(s, "secret_text") for s in secrets}
    assert deployed == expected


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

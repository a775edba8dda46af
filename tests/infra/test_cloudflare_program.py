"""The Cloudflare side of the program under mocks, for both stacks: every resource, its properties and
the links between them (ids flowing into bindings, the service token into the Worker's secrets, the
Access AUD into the tunnel), protection in prod, secrets staying secret."""

from __future__ import annotations

import pytest
from pulumi.runtime import rpc

from infra.d1_migrations import migrations_dir, read_migrations
from infra.dlp_patterns import load_dlp_patterns
from infra.program import WRANGLER_DEFINED_VARS
from infra.wrangler_config import load_wrangler_config
from tests.infra.conftest import PROJECT, TEST_ACCOUNT_ID, TEST_SECRETS, TEST_ZONE_ID, plain, plaintext_leaks

CF = "cloudflare:index"
D1 = f"{CF}/d1Database:D1Database"
KV = f"{CF}/workersKvNamespace:WorkersKvNamespace"
R2 = f"{CF}/r2Bucket:R2Bucket"
R2_LIFECYCLE = f"{CF}/r2BucketLifecycle:R2BucketLifecycle"
SCRIPT = f"{CF}/workersScript:WorkersScript"
DOMAIN = f"{CF}/workersCustomDomain:WorkersCustomDomain"
CRON = f"{CF}/workersCronTrigger:WorkersCronTrigger"
SERVICE_TOKEN = f"{CF}/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken"
POLICY = f"{CF}/zeroTrustAccessPolicy:ZeroTrustAccessPolicy"
APPLICATION = f"{CF}/zeroTrustAccessApplication:ZeroTrustAccessApplication"
POSTURE = f"{CF}/zeroTrustDevicePostureRule:ZeroTrustDevicePostureRule"
DLP_PROFILE = f"{CF}/zeroTrustDlpCustomProfile:ZeroTrustDlpCustomProfile"
DLP_ENTRY = f"{CF}/zeroTrustDlpCustomEntry:ZeroTrustDlpCustomEntry"
GATEWAY = f"{CF}/zeroTrustGatewayPolicy:ZeroTrustGatewayPolicy"
TUNNEL = f"{CF}/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"
TUNNEL_CONFIG = f"{CF}/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
DNS = f"{CF}/dnsRecord:DnsRecord"
DYNAMIC = "pulumi-python:dynamic:Resource"
STATEFUL = (D1, KV, R2)


def binding(run, name):
    return next(b for b in run.one(SCRIPT).input("bindings") if b["name"] == name)


def dynamic(run, name):
    return next(r for r in run.of_type(DYNAMIC) if r.name == name)


def test_storage_is_named_per_stack_and_linked(stack_run):
    prefix = (
        "steadytext-dev" if stack_run.outputs["apiUrl"].startswith("https://api-dev") else "steadytext-prod"
    )
    assert stack_run.one(D1).input("name") == f"{prefix}-cache"
    assert stack_run.one(KV).input("title") == f"{prefix}-cache"
    # The models bucket (the batch bucket, BATCH_FILES, is tests/infra/test_batch_pipeline.py's).
    buckets = {bucket.name: bucket for bucket in stack_run.of_type(R2)}
    assert buckets["edge-storage-models"].input("name") == f"{prefix}-models"
    assert {bucket.input("accountId") for bucket in buckets.values()} == {TEST_ACCOUNT_ID}
    for token in (D1, KV, SCRIPT, SERVICE_TOKEN, APPLICATION, TUNNEL, DLP_PROFILE):
        assert stack_run.one(token).input("accountId") == TEST_ACCOUNT_ID
    lifecycle = next(r for r in stack_run.of_type(R2_LIFECYCLE) if r.name == "edge-storage-models-lifecycle")
    assert lifecycle.input("accountId") == TEST_ACCOUNT_ID
    assert lifecycle.input("bucketName") == f"{prefix}-models"
    rule = lifecycle.input("rules")[0]
    assert rule["enabled"] and rule["abortMultipartUploadsTransition"]["condition"]["type"] == "Age"


def test_the_d1_migrations_go_to_the_new_database_before_the_worker_deploys(stack_run):
    schema = dynamic(stack_run, "edge-storage-d1-schema")
    assert schema.input("database_id") == stack_run.outputs["d1DatabaseId"]
    migrations = read_migrations(migrations_dir())
    assert schema.input("migrations") == [{"name": m.name, "sql": m.sql} for m in migrations]
    assert schema.input("migration_sha256s") == {m.name: m.sha256 for m in migrations}
    assert schema.urn in stack_run.one(SCRIPT).dependencies


def test_worker_bindings_carry_the_storage_ids(stack_run):
    outputs = stack_run.outputs
    assert binding(stack_run, "DB") == {"name": "DB", "type": "d1", "databaseId": outputs["d1DatabaseId"]}
    assert binding(stack_run, "CACHE") == {
        "name": "CACHE",
        "type": "kv_namespace",
        "namespaceId": outputs["kvNamespaceId"],
    }
    # The models bucket is infra's (the GPU hosts download the GGUF from it); the Worker never reads it.
    assert "MODELS" not in {b["name"] for b in stack_run.one(SCRIPT).input("bindings")}


def test_worker_script_matches_wrangler_and_the_bundle(stack_run, worker_bundle):
    wrangler = load_wrangler_config()
    script = stack_run.one(SCRIPT)
    assert script.input("mainModule") == "index.js"
    assert script.input("contentFile") == str(worker_bundle.main_module)
    assert script.input("contentSha256") == worker_bundle.sha256
    assert script.input("compatibilityDate") == wrangler["compatibility_date"]
    assert (script.input("compatibilityFlags") or []) == wrangler.get("compatibility_flags", [])
    assert script.input("logpush") is True
    migrations = script.input("migrations")
    assert migrations["newTag"] == wrangler["migrations"][-1]["tag"]
    assert migrations["steps"][0]["newSqliteClasses"] == wrangler["migrations"][0]["new_sqlite_classes"]
    assert stack_run.one(DOMAIN).input("hostname") == stack_run.outputs["apiUrl"].removeprefix("https://")
    assert stack_run.one(DOMAIN).input("zoneId") == TEST_ZONE_ID
    assert stack_run.one(DOMAIN).input("service") == script.input("scriptName")
    assert [s["cron"] for s in stack_run.one(CRON).input("schedules")] == wrangler["triggers"]["crons"]
    workers_dev = stack_run.one(f"{CF}/workersScriptSubdomain:WorkersScriptSubdomain")
    assert workers_dev.input("scriptName") == script.input("scriptName")
    assert (workers_dev.input("enabled"), workers_dev.input("previewsEnabled")) == (False, False)


def test_worker_vars_follow_the_stack(dev_run, prod_run):
    assert "ENVIRONMENT" not in {b["name"] for b in dev_run.one(SCRIPT).input("bindings")}
    assert binding(dev_run, "DLP_POLICY")["text"] == "redact"
    assert binding(prod_run, "DLP_POLICY")["text"] == "block"
    assert binding(prod_run, "ORIGIN_URL")["text"] == "https://gpu-origin.example.com"
    assert binding(dev_run, "CACHE_TTL_SECONDS")["text"] == "3600"
    assert binding(prod_run, "CACHE_MAX_AGE_SECONDS")["text"] == "604800"
    assert binding(prod_run, "MAX_TOKENS_LIMIT") == {
        "name": "MAX_TOKENS_LIMIT",
        "type": "plain_text",
        "text": "1024",
    }


def test_per_key_limits_deploy_with_the_values_of_wrangler_jsonc(stack_run):
    wrangler_vars = load_wrangler_config()["vars"]
    assert "MAX_CONCURRENT_PER_KEY" in WRANGLER_DEFINED_VARS
    for name in WRANGLER_DEFINED_VARS:
        assert binding(stack_run, name)["text"] == wrangler_vars[name]


def test_the_access_service_token_and_secrets_reach_the_worker_as_secrets(stack_run, dev_run):
    script = stack_run.one(SCRIPT)
    secret_bindings = {b["name"]: b for b in script.input("bindings") if b["type"] == "secret_text"}
    # Dev scales to zero: its Worker also holds the scale-from-zero signal's IAM key (test_scale_signal.py).
    scale_signal = (
        {"SCALE_SIGNAL_ACCESS_KEY_ID", "SCALE_SIGNAL_SECRET_ACCESS_KEY"} if stack_run is dev_run else set()
    )
    assert (
        set(secret_bindings)
        == {
            "CF_ACCESS_CLIENT_ID",
            "CF_ACCESS_CLIENT_SECRET",
            "ORIGIN_TOKEN",
            "METRICS_TOKEN",
            "RECEIPT_SIGNING_KEY",
        }
        | scale_signal
    )
    assert secret_bindings["CF_ACCESS_CLIENT_ID"]["text"] == stack_run.outputs["accessServiceTokenClientId"]
    assert secret_bindings["CF_ACCESS_CLIENT_SECRET"]["text"].startswith("SECRET-access-client-secret-")
    assert secret_bindings["ORIGIN_TOKEN"]["text"] == TEST_SECRETS[f"{PROJECT}:originToken"]
    assert secret_bindings["METRICS_TOKEN"]["text"] == TEST_SECRETS[f"{PROJECT}:metricsToken"]
    # Pulumi marks a whole property secret when part of it is: the engine gets `bindings` encrypted.
    assert rpc.is_rpc_secret(script.inputs["bindings"])


def test_no_secret_appears_in_plain_text_anywhere(stack_run):
    needles = [*TEST_SECRETS.values(), "SECRET-access-client-secret-", "SECRET-tunnel-token-"]
    for resource in stack_run.resources:
        assert plaintext_leaks(resource.inputs, needles) == [], resource.name
    assert stack_run.secret_outputs == {"accessServiceTokenClientId", "tunnelToken"}
    public = {
        name: value for name, value in stack_run.outputs.items() if name not in stack_run.secret_outputs
    }
    assert plaintext_leaks(public, needles) == []


def test_prod_protects_and_retains_what_holds_data(prod_run):
    for token in STATEFUL:
        # R2: the models bucket and the batch bucket (edge/wrangler.jsonc's BATCH_FILES).
        for resource in prod_run.of_type(token):
            assert resource.protect and resource.retain_on_delete, resource.name
    assert len(prod_run.of_type(R2)) == 2


def test_dev_blocks_no_teardown(dev_run):
    assert [r.name for r in dev_run.resources if r.protect or r.retain_on_delete] == []


def test_every_child_is_parented_to_its_component(stack_run):
    components = {r.urn: r for r in stack_run.resources if not r.custom}
    assert {c.type for c in components.values()} >= {
        "steadytext:cloudflare:EdgeStorage",
        "steadytext:cloudflare:EdgeWorker",
        "steadytext:cloudflare:ZeroTrust",
        "steadytext:cloudflare:OriginTunnel",
        "steadytext:cloudflare:ModelArtifact",
        "steadytext:cloudflare:ReceiptKey",
    }
    cloudflare = [
        r
        for r in stack_run.resources
        if r.custom and (r.type.startswith(("cloudflare:", "tls:")) or r.type == DYNAMIC)
    ]
    assert cloudflare and all(r.parent in components for r in cloudflare)


def test_access_application_guards_the_origin_with_valid_precedences(stack_run):
    app = stack_run.one(APPLICATION)
    assert app.input("type") == "self_hosted"
    assert app.input("domain") == stack_run.outputs["originHostname"]
    precedences = [p["precedence"] for p in app.input("policies")]
    assert all(p == int(p) and p >= 1 for p in precedences)  # whole numbers (protobuf sends floats)
    assert len(set(precedences)) == len(precedences)
    policies = {r.name: r for r in stack_run.of_type(POLICY)}
    by_id = {f"{name}-id": policy for name, policy in policies.items()}
    attached = [by_id[p["id"]] for p in sorted(app.input("policies"), key=lambda p: p["precedence"])]
    service, people = attached
    token = stack_run.one(SERVICE_TOKEN)
    assert service.input("decision") == "non_identity"
    assert service.input("includes") == [{"serviceToken": {"tokenId": f"{token.name}-id"}}]
    assert people.input("decision") == "allow"
    assert people.input("includes") == [{"emailDomain": {"domain": "example.com"}}]


def test_people_need_a_warp_device_in_prod_only(dev_run, prod_run):
    assert dev_run.of_type(POSTURE) == []
    rule = prod_run.one(POSTURE)
    assert rule.input("type") == "warp"
    people = next(p for p in prod_run.of_type(POLICY) if p.input("decision") == "allow")
    assert people.input("requires") == [{"devicePosture": {"integrationUid": f"{rule.name}-id"}}]
    dev_people = next(p for p in dev_run.of_type(POLICY) if p.input("decision") == "allow")
    assert not dev_people.input("requires")


def test_dlp_entries_are_the_workers_patterns(stack_run):
    profile = stack_run.one(DLP_PROFILE)
    entries = stack_run.of_type(DLP_ENTRY)
    assert sorted((e.input("name"), e.input("pattern")["regex"]) for e in entries) == sorted(
        (p.name, p.regex) for p in load_dlp_patterns()
    )
    # `validation` is deprecated in provider v5 (deploy-fidelity #7): not sent; the Worker checks Luhn.
    assert all(set(e.input("pattern")) == {"regex"} for e in entries)
    assert all(e.input("profileId") == f"{profile.name}-id" and e.input("enabled") for e in entries)
    assert "docs/dlp.md" in profile.input("description")  # where the entries' gaps are written down
    gateway = stack_run.one(GATEWAY)
    assert gateway.input("action") == "block" and gateway.input("filters") == ["http"]
    assert f'dlp.profiles[*] in {{"{profile.name}-id"}}' in gateway.input("traffic")
    assert stack_run.outputs["originHostname"] in gateway.input("traffic")


def test_tunnel_routes_only_the_origin_and_ends_with_404(stack_run):
    tunnel = stack_run.one(TUNNEL)
    assert tunnel.input("configSrc") == "cloudflare"
    config = stack_run.one(TUNNEL_CONFIG)
    assert config.input("tunnelId") == stack_run.outputs["tunnelId"] == f"{tunnel.name}-id"
    ingresses = config.input("config")["ingresses"]
    assert ingresses[-1] == {"service": "http_status:404"}
    assert [i.get("hostname") for i in ingresses[:-1]] == [stack_run.outputs["originHostname"]]
    origin = ingresses[0]
    assert origin["service"] == "http://localhost:8000"
    assert origin["originRequest"]["access"] == {
        "required": True,
        "teamName": "steadytext-test",
        "audTags": [stack_run.outputs["accessApplicationAud"]],
    }


def test_tunnel_dns_and_token(stack_run):
    record = stack_run.one(DNS)
    assert record.input("zoneId") == TEST_ZONE_ID
    assert record.input("name") == stack_run.outputs["originHostname"]
    assert (record.input("type"), record.input("proxied")) == ("CNAME", True)
    assert record.input("content") == f"{stack_run.outputs['tunnelId']}.cfargotunnel.com"
    (args,) = [args for token, args in stack_run.invocations if token.endswith("CloudflaredToken")]
    assert args == {"accountId": TEST_ACCOUNT_ID, "tunnelId": stack_run.outputs["tunnelId"]}
    assert stack_run.outputs["tunnelToken"].startswith("SECRET-tunnel-token-")


def test_model_artifact_is_uploaded_to_the_models_bucket(stack_run, model_file):
    import hashlib

    upload = dynamic(stack_run, "model-object")
    assert upload.input("bucket") == stack_run.outputs["modelsBucket"]
    assert upload.input("endpoint") == f"https://{TEST_ACCOUNT_ID}.r2.cloudflarestorage.com"
    assert upload.input("sha256") == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert stack_run.outputs["modelSha256"] == upload.input("sha256")
    assert stack_run.outputs["modelObjectKey"] == f"models/{model_file.name}"
    assert (
        stack_run.outputs["modelUrl"] == f"s3://{stack_run.outputs['modelsBucket']}/models/{model_file.name}"
    )


@pytest.mark.parametrize("key", [f"{PROJECT}:originHostname", "cloudflare:apiToken"])
def test_the_program_stops_on_config_errors_before_declaring_anything(run_program, key):
    from infra.config import ConfigError

    with pytest.raises(ConfigError, match=key):
        run_program("prod", without=(key,))


def snake_case_keys(value, path="") -> list[str]:
    """Argument names the SDK did not recognise: it turns every known one into the schema's camelCase."""
    if isinstance(value, dict):
        return [f"{path}.{key}" for key in value if "_" in key] + [
            found for key, item in value.items() for found in snake_case_keys(item, f"{path}.{key}")
        ]
    if isinstance(value, list):
        return [found for item in value for found in snake_case_keys(item, path)]
    return []


def test_every_argument_is_known_to_the_provider_schema(stack_run):
    for resource in stack_run.resources:
        if resource.type.startswith("cloudflare:"):
            assert snake_case_keys(plain(resource.inputs)) == [], resource.name

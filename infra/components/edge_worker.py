"""The Worker as deployed: wrangler's bundle of `edge/`, uploaded with every binding `edge/wrangler.jsonc`
declares (D1, KV, R2, the Durable Object with its migrations, the rate limiter, plain vars) plus the
secrets, the same compatibility date/flags, Logpush on, a custom domain for the API hostname (and no
workers.dev address) and the cache-eviction cron.

Bindings are derived from wrangler.jsonc and the program must supply a resource or value for each one:
a binding added to the Worker but not to infra (or the reverse) stops the deploy instead of shipping a
Worker whose `env` lacks what its code reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_cloudflare as cf

from infra.worker_bundle import WorkerBundle


class BindingDriftError(ValueError):
    pass


def _exactly(kind: str, declared: set[str], supplied: set[str]) -> None:
    missing, unknown = sorted(declared - supplied), sorted(supplied - declared)
    if missing or unknown:
        raise BindingDriftError(
            f"edge/wrangler.jsonc and infra disagree on {kind}: "
            f"declared there but not supplied by infra {missing}, "
            f"supplied by infra but not declared {unknown}"
        )


def worker_bindings(
    wrangler: Mapping[str, Any],
    resource_ids: Mapping[str, pulumi.Input[str]],
    plain_vars: Mapping[str, pulumi.Input[str]],
    secrets: Mapping[str, pulumi.Input[str]],
) -> list[dict[str, Any]]:
    """The `WorkersScript.bindings` list for the bindings in wrangler.jsonc.

    `resource_ids` maps each storage binding name to its D1 uuid, KV namespace id or R2 bucket name;
    `plain_vars` must cover wrangler's `vars` exactly; `secrets` become `secret_text` marked secret.
    """
    d1 = {b["binding"]: b for b in wrangler.get("d1_databases", [])}
    kv = {b["binding"]: b for b in wrangler.get("kv_namespaces", [])}
    r2 = {b["binding"]: b for b in wrangler.get("r2_buckets", [])}
    _exactly("storage bindings", set(d1) | set(kv) | set(r2), set(resource_ids))
    _exactly("vars", set(wrangler.get("vars", {})), set(plain_vars))

    bindings: list[dict[str, Any]] = []
    bindings += [{"name": name, "type": "d1", "database_id": resource_ids[name]} for name in d1]
    bindings += [{"name": name, "type": "kv_namespace", "namespace_id": resource_ids[name]} for name in kv]
    bindings += [{"name": name, "type": "r2_bucket", "bucket_name": resource_ids[name]} for name in r2]
    bindings += [
        {"name": b["name"], "type": "durable_object_namespace", "class_name": b["class_name"]}
        for b in wrangler.get("durable_objects", {}).get("bindings", [])
    ]
    bindings += [
        {
            "name": b["name"],
            "type": "ratelimit",
            "namespace_id": str(b["namespace_id"]),
            "simple": {"limit": b["simple"]["limit"], "period": b["simple"]["period"]},
        }
        for b in wrangler.get("ratelimits", [])
    ]
    bindings += [
        {"name": name, "type": "plain_text", "text": plain_vars[name]} for name in wrangler.get("vars", {})
    ]
    bindings += [
        {"name": name, "type": "secret_text", "text": pulumi.Output.secret(value)}
        for name, value in sorted(secrets.items())
    ]
    return bindings


_MIGRATION_STEP_KEYS = ("new_classes", "new_sqlite_classes", "deleted_classes")


def durable_object_migrations(wrangler: Mapping[str, Any], live_tag: str) -> dict[str, Any] | None:
    """The Durable Object migrations to upload, given the tag the live script already has ("" = none).

    Like `wrangler deploy`: only the steps after `live_tag`, with `old_tag` = `live_tag` so Cloudflare
    rejects the upload if the live script is elsewhere. A script that has a tag must always be sent
    one, so an up-to-date script gets `old_tag` = `new_tag` and nothing to apply.
    """
    history = wrangler.get("migrations", [])
    if not history:
        return None
    tags = [entry["tag"] for entry in history]
    pending = history[tags.index(live_tag) + 1 :] if live_tag else history
    steps = []
    for entry in pending:
        step: dict[str, Any] = {key: entry[key] for key in _MIGRATION_STEP_KEYS if key in entry}
        if "renamed_classes" in entry:
            step["renamed_classes"] = [{"from_": r["from"], "to": r["to"]} for r in entry["renamed_classes"]]
        steps.append(step)
    migrations: dict[str, Any] = {"new_tag": tags[-1]}
    if steps:
        migrations["steps"] = steps
    if live_tag:
        migrations["old_tag"] = live_tag
    return migrations


@dataclass(frozen=True)
class EdgeWorkerArgs:
    account_id: str
    zone_id: str
    script_name: str
    api_hostname: str
    bundle: WorkerBundle
    wrangler: Mapping[str, Any]
    resource_ids: Mapping[str, pulumi.Input[str]]
    plain_vars: Mapping[str, pulumi.Input[str]]
    secrets: Mapping[str, pulumi.Input[str]]
    # The Durable Object migration tag the live script has ("" for a new Worker).
    live_migration_tag: str = ""
    # Resources the script must wait for (the D1 schema: the Worker's first query needs its tables).
    after: tuple[pulumi.Resource, ...] = ()


class EdgeWorker(pulumi.ComponentResource):
    def __init__(self, name: str, args: EdgeWorkerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("steadytext:cloudflare:EdgeWorker", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        wrangler = args.wrangler
        observability = wrangler.get("observability", {}).get("enabled", False)

        migrations = durable_object_migrations(wrangler, args.live_migration_tag)
        # What the live script's tag is once this deploy succeeds (the next deploy's workerMigrationTag).
        self.migration_tag = migrations["new_tag"] if migrations else ""
        self.script = cf.WorkersScript(
            f"{name}-script",
            account_id=args.account_id,
            script_name=args.script_name,
            main_module=args.bundle.main_module.name,
            content_file=str(args.bundle.main_module),
            content_sha256=args.bundle.sha256,
            content_type="application/javascript+module",
            compatibility_date=wrangler["compatibility_date"],
            compatibility_flags=wrangler.get("compatibility_flags", []),
            bindings=worker_bindings(wrangler, args.resource_ids, args.plain_vars, args.secrets),
            migrations=migrations,
            observability={"enabled": observability},
            # Workers Trace Events Logpush (the AWS side's Logpush job ships them to the audit bucket).
            logpush=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
        )
        self.custom_domain = cf.WorkersCustomDomain(
            f"{name}-domain",
            account_id=args.account_id,
            zone_id=args.zone_id,
            hostname=args.api_hostname,
            service=self.script.script_name,
            opts=child,
        )
        # The API hostname is the only way in: no <script>.<account>.workers.dev address or previews.
        self.workers_dev = cf.WorkersScriptSubdomain(
            f"{name}-workers-dev",
            account_id=args.account_id,
            script_name=self.script.script_name,
            enabled=False,
            previews_enabled=False,
            opts=child,
        )
        crons = wrangler.get("triggers", {}).get("crons", [])
        self.cron_trigger = (
            cf.WorkersCronTrigger(
                f"{name}-cron",
                account_id=args.account_id,
                script_name=self.script.script_name,
                schedules=[{"cron": cron} for cron in crons],
                opts=child,
            )
            if crons
            else None
        )
        self.url = f"https://{args.api_hostname}"
        self.register_outputs({"script_name": self.script.script_name, "url": self.url})

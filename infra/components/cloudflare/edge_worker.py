"""The Worker as deployed: wrangler's bundle of `edge/`, uploaded with every binding `edge/wrangler.jsonc`
declares (D1, KV, R2, Queue producers, Workflows, the Durable Object with its migrations, the rate
limiter, plain vars) plus the secrets, the same compatibility date/flags, Logpush on, a custom domain for
the API hostname (and no workers.dev address), the cache-eviction cron and, as `wrangler deploy` attaches
them after the upload, the Worker's Queue consumers (with wrangler.jsonc's settings) and its Workflows.

Bindings are derived from wrangler.jsonc and the program must supply a resource or value for each one:
a binding added to the Worker but not to infra (or the reverse) stops the deploy instead of shipping a
Worker whose `env` lacks what its code reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_cloudflare as cf

from infra.worker_bundle import WorkerBundle
from infra.wrangler_config import resource_role


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

    `resource_ids` maps each resource binding name to its D1 uuid, KV namespace id, R2 bucket name,
    queue name (producers) or workflow name; `plain_vars` must cover wrangler's `vars` exactly; `secrets`
    become `secret_text` marked secret.
    """
    d1 = {b["binding"]: b for b in wrangler.get("d1_databases", [])}
    kv = {b["binding"]: b for b in wrangler.get("kv_namespaces", [])}
    r2 = {b["binding"]: b for b in wrangler.get("r2_buckets", [])}
    queues = {b["binding"]: b for b in wrangler.get("queues", {}).get("producers", [])}
    workflows = {b["binding"]: b for b in wrangler.get("workflows", [])}
    _exactly(
        "resource bindings",
        set(d1) | set(kv) | set(r2) | set(queues) | set(workflows),
        set(resource_ids),
    )
    _exactly("vars", set(wrangler.get("vars", {})), set(plain_vars))

    bindings: list[dict[str, Any]] = []
    bindings += [{"name": name, "type": "d1", "database_id": resource_ids[name]} for name in d1]
    bindings += [{"name": name, "type": "kv_namespace", "namespace_id": resource_ids[name]} for name in kv]
    bindings += [{"name": name, "type": "r2_bucket", "bucket_name": resource_ids[name]} for name in r2]
    bindings += [{"name": name, "type": "queue", "queue_name": resource_ids[name]} for name in queues]
    bindings += [
        {"name": name, "type": "workflow", "workflow_name": resource_ids[name], "class_name": b["class_name"]}
        for name, b in workflows.items()
    ]
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


class MigrationTagError(ValueError):
    pass


class ConsumerTypeError(ValueError):
    pass


def consumer_settings(consumer: Mapping[str, Any]) -> dict[str, Any]:
    """A wrangler.jsonc queue consumer's settings as the Queues API takes them (what `wrangler deploy`
    sends: seconds of `max_batch_timeout` become `max_wait_time_ms`); unset ones stay unset."""
    if consumer.get("type", "worker") != "worker":
        raise ConsumerTypeError(
            f"edge/wrangler.jsonc: the consumer of {consumer['queue']!r} has type {consumer['type']!r}; "
            "infra declares this Worker's own consumers only (type worker)"
        )
    settings = {
        "batch_size": consumer.get("max_batch_size"),
        "max_retries": consumer.get("max_retries"),
        "max_wait_time_ms": consumer["max_batch_timeout"] * 1000 if "max_batch_timeout" in consumer else None,
        "max_concurrency": consumer.get("max_concurrency"),
        "retry_delay": consumer.get("retry_delay"),
    }
    return {key: value for key, value in settings.items() if value is not None}


def durable_object_migrations(wrangler: Mapping[str, Any], live_tag: str) -> dict[str, Any] | None:
    """The Durable Object migrations to upload, given the tag the live script has ("" = none yet).

    As `wrangler deploy` does (workers-sdk `getMigrationsToUpload`): nothing when the live script is
    already at the last tag; otherwise only the steps after `live_tag`, with `old_tag` = `live_tag`, so
    Cloudflare refuses the upload if the live script has moved on meanwhile.
    """
    history = wrangler.get("migrations", [])
    tags = [entry["tag"] for entry in history]
    if live_tag and live_tag not in tags:
        raise MigrationTagError(
            f"the deployed Worker's Durable Object migration tag is {live_tag!r}, which edge/wrangler.jsonc "
            f"does not list ({', '.join(tags) or 'no migrations'}): a migration was removed from "
            "wrangler.jsonc or the Worker was deployed from another tree; restore that migration entry "
            "(tags are history and stay in the file) before deploying"
        )
    if not history or (live_tag and live_tag == tags[-1]):
        return None
    pending = history[tags.index(live_tag) + 1 :] if live_tag else history
    steps = []
    for entry in pending:
        step: dict[str, Any] = {key: entry[key] for key in _MIGRATION_STEP_KEYS if key in entry}
        if "renamed_classes" in entry:
            step["renamed_classes"] = [{"from_": r["from"], "to": r["to"]} for r in entry["renamed_classes"]]
        steps.append(step)
    migrations: dict[str, Any] = {"new_tag": tags[-1], "steps": steps}
    if live_tag:
        migrations["old_tag"] = live_tag
    return migrations


def live_migration_tag(account_id: str, script_name: str) -> pulumi.Output[str]:
    """The Durable Object migration tag the deployed script has now ("" when there is no such script),
    read from Cloudflare's script list at every preview and update (the list, unlike the single-script
    lookup, does not fail for a Worker that does not exist yet)."""
    scripts = cf.get_workers_scripts_output(account_id=account_id)
    return scripts.results.apply(
        lambda results: next(
            ((script.migration_tag or "") for script in results or [] if script.id == script_name), ""
        )
    )


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
    # The queues wrangler.jsonc names, by local name (EdgeQueues'): the consumers attach to them.
    queues: Mapping[str, cf.Queue] = field(default_factory=dict)
    # Protect the Workflows (prod): deleting one ends its running instances, batches in progress.
    protect: bool = False
    # Resources the script must wait for (the D1 schema: the Worker's first query needs its tables).
    after: tuple[pulumi.Resource, ...] = ()


class EdgeWorker(pulumi.ComponentResource):
    def __init__(self, name: str, args: EdgeWorkerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("steadytext:cloudflare:EdgeWorker", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        wrangler = args.wrangler
        observability = wrangler.get("observability", {}).get("enabled", False)

        # Read from Cloudflare, not from config: no manual bookkeeping between deploys, and a deploy made
        # elsewhere (wrangler, a half-finished `pulumi up`) is seen as it is.
        self.live_migration_tag = live_migration_tag(args.account_id, args.script_name)
        migrations = self.live_migration_tag.apply(lambda tag: durable_object_migrations(wrangler, tag))
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
        self.queue_consumers = [
            cf.QueueConsumer(
                f"{name}-consumer-{resource_role(consumer['queue'])}",
                account_id=args.account_id,
                queue_id=args.queues[consumer["queue"]].queue_id,
                type="worker",
                script_name=self.script.script_name,
                dead_letter_queue=(
                    args.queues[consumer["dead_letter_queue"]].queue_name
                    if "dead_letter_queue" in consumer
                    else None
                ),
                settings=consumer_settings(consumer),
                opts=child,
            )
            for consumer in wrangler.get("queues", {}).get("consumers", [])
        ]
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect)
        self.workflows = [
            cf.Workflow(
                f"{name}-workflow-{resource_role(workflow['name'])}",
                account_id=args.account_id,
                workflow_name=args.resource_ids[workflow["binding"]],
                class_name=workflow["class_name"],
                script_name=self.script.script_name,
                limits=workflow.get("limits"),  # e.g. {"steps": 10000}, as wrangler deploy sends it
                opts=stateful,
            )
            for workflow in wrangler.get("workflows", [])
        ]
        self.url = f"https://{args.api_hostname}"
        # The tag the provider reports for the script once this deploy has run.
        self.migration_tag = self.script.migration_tag
        self.register_outputs(
            {"script_name": self.script.script_name, "url": self.url, "migration_tag": self.migration_tag}
        )

"""The program `pulumi up` runs (via infra/__main__.py), importable so tests and the offline plan can
run it under mocks: read the config, declare the Cloudflare side, export what operators and the AWS
side need."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from infra import REPO_ROOT, config
from infra.build_context import program_relative
from infra.components.aws.audit_logging import AuditLogging, AuditLoggingArgs
from infra.components.aws.capacity import GpuCapacity, GpuCapacityArgs
from infra.components.aws.cold_start import cold_start_seconds
from infra.components.aws.image import RuntimeImage, RuntimeImageArgs
from infra.components.aws.network import GpuNetwork, GpuNetworkArgs
from infra.components.aws.scale_signal import ScaleSignal, ScaleSignalArgs
from infra.components.aws.scaling import ServiceScaling, ServiceScalingArgs
from infra.components.aws.service import GpuService, GpuServiceArgs, task_family
from infra.components.aws.sidecar_image import SidecarImage, SidecarImageArgs, cache_prefix
from infra.components.aws.start_budget import StartBudget, StartBudgetError, start_budget
from infra.components.cloudflare.edge_queues import EdgeQueues, EdgeQueuesArgs
from infra.components.cloudflare.edge_storage import EdgeStorage, EdgeStorageArgs
from infra.components.cloudflare.edge_worker import EdgeWorker, EdgeWorkerArgs
from infra.components.cloudflare.model_artifact import ModelArtifact, ModelArtifactArgs
from infra.components.cloudflare.origin_tunnel import OriginTunnel, OriginTunnelArgs
from infra.components.cloudflare.receipt_key import ReceiptKey, ReceiptKeyArgs
from infra.components.cloudflare.zero_trust import ZeroTrust, ZeroTrustArgs
from infra.config import StackConfig
from infra.config.aws import AwsConfig
from infra.config.model import ModelConfig
from infra.config.reader import ConfigError, ConfigReader
from infra.dlp_patterns import load_dlp_patterns
from infra.dockerfile import CUDA_DOCKERFILE
from infra.worker_bundle import WorkerBundle, build_worker_bundle
from infra.wrangler_config import deployed_name, load_wrangler_config


@dataclass(frozen=True)
class CloudflareEdge:
    storage: EdgeStorage
    queues: EdgeQueues
    model: ModelArtifact
    zero_trust: ZeroTrust
    tunnel: OriginTunnel
    receipt_key: ReceiptKey
    worker: EdgeWorker
    model_bytes: int  # size of the GGUF the GPU runtime downloads and loads
    wrangler: Mapping[str, Any]  # edge/wrangler.jsonc as deployed


def local_model(model: ModelConfig):
    """The GGUF to upload and its sha256 (runtime.config.model_source: the runtime's own resolution)."""
    from runtime.config.model_source import ModelFile, resolve_model, sha256_of
    from runtime.config.settings import RuntimeSettings

    if model.file is not None:
        return ModelFile(model.file, sha256_of(model.file))
    return resolve_model(RuntimeSettings(model_path=None, model_url=None, model_sha256=None))


# Per-key limits (the Batch API's included), what a hit costs a key's budget and the request-path
# tunables below live in edge/wrangler.jsonc alone, like the RATE_LIMITER binding's limit: the deployed
# Worker gets that file's values.
WRANGLER_DEFINED_VARS = (
    "MAX_CONCURRENT_PER_KEY",
    "MAX_TOKENS_IN_FLIGHT_PER_KEY",
    "MAX_EMBED_INPUTS_IN_FLIGHT_PER_KEY",
    "MAX_EMBED_INPUTS",
    "CACHE_TTL_MIN_SECONDS",
    "SSE_KEEPALIVE_MS",
    "NON_STREAM_MAX_SECONDS",
    "BUDGET_HIT_TOKENS",
    "MAX_BATCH_FILE_BYTES",
    "MAX_BATCH_LINES",
    "MAX_CONCURRENT_BATCHES_PER_KEY",
    "BATCH_SHARE_PERCENT",
)


def aws_tags(cfg: StackConfig) -> dict[str, str]:
    return {"steadytext:stack": cfg.stack}


def scales_to_zero(cfg: StackConfig) -> bool:
    return cfg.aws.scaling.min_tasks == 0


def worker_vars(cfg: StackConfig, wrangler_vars: dict[str, str], model_bytes: int) -> dict[str, str]:
    cf, worker = cfg.cloudflare, cfg.cloudflare.worker
    # Where the GPU service may run no task, a miss with the origin down signals a start (the IAM key is in
    # the secrets) and tells the client to come back after the cold start.
    to_zero = scales_to_zero(cfg)
    cold_start = cold_start_seconds(task_start_budget(model_bytes, cfg.aws)) if to_zero else 0
    return {
        **{name: wrangler_vars[name] for name in WRANGLER_DEFINED_VARS},
        "ORIGIN_URL": f"https://{cf.origin_hostname}",
        "ORIGIN_FALLBACK_URL": worker.origin_fallback_url,
        "DLP_POLICY": worker.dlp_policy,
        "CACHE_TTL_SECONDS": str(worker.cache_ttl_seconds),
        "CACHE_MAX_AGE_SECONDS": str(worker.cache_max_age_seconds),
        "MEMORY_CACHE_ENTRIES": str(worker.memory_cache_entries),
        "MAX_TOKENS_LIMIT": str(worker.max_tokens_limit),
        "MAX_BODY_BYTES": str(worker.max_body_bytes),
        "ORIGIN_TIMEOUT_MS": str(worker.origin_timeout_ms),
        "MODEL_FINGERPRINT": worker.model_fingerprint,
        "COLD_START_SECONDS": str(cold_start),
        "SCALE_SIGNAL_REGION": cfg.aws.region if to_zero else "",
        "SCALE_SIGNAL_SERVICE": task_family(cf.resource_prefix) if to_zero else "",
    }


def resource_ids(
    wrangler: Mapping[str, Any], storage: EdgeStorage, queues: EdgeQueues, resource_prefix: str
) -> dict[str, pulumi.Input[str]]:
    """What each resource binding of wrangler.jsonc binds to in this stack."""
    producers = wrangler.get("queues", {}).get("producers", [])
    return {
        "DB": storage.database.uuid,
        "CACHE": storage.kv_namespace.id,
        **{
            b["binding"]: storage.worker_buckets[b["bucket_name"]].name
            for b in wrangler.get("r2_buckets", [])
        },
        **{p["binding"]: queues.queues[p["queue"]].queue_name for p in producers},
        **{w["binding"]: deployed_name(w["name"], resource_prefix) for w in wrangler.get("workflows", [])},
    }


def deploy_cloudflare(
    cfg: StackConfig,
    bundle: WorkerBundle,
    scale_signal: ScaleSignal | None = None,
    wrangler: Mapping[str, Any] | None = None,
) -> CloudflareEdge:
    cf = cfg.cloudflare
    wrangler = wrangler if wrangler is not None else load_wrangler_config()
    model_file = local_model(cfg.model)
    storage = EdgeStorage(
        "edge-storage",
        EdgeStorageArgs(
            account_id=cf.account_id,
            resource_prefix=cf.resource_prefix,
            protect=cfg.protect,
            api_token=cf.api_token,
            worker_buckets=tuple(b["bucket_name"] for b in wrangler.get("r2_buckets", [])),
        ),
    )
    queues = EdgeQueues(
        "edge-queues",
        EdgeQueuesArgs(
            account_id=cf.account_id,
            resource_prefix=cf.resource_prefix,
            protect=cfg.protect,
            wrangler=wrangler,
            bucket_names={local: bucket.name for local, bucket in storage.worker_buckets.items()},
        ),
    )
    model = ModelArtifact(
        "model",
        ModelArtifactArgs(
            endpoint=cf.r2_endpoint,
            bucket=storage.models_bucket.name,
            path=model_file.path,
            sha256=model_file.sha256,
            access_key_id=cf.r2_access_key_id,
            secret_access_key=cf.r2_secret_access_key,
        ),
    )
    zero_trust = ZeroTrust(
        "zero-trust",
        ZeroTrustArgs(
            account_id=cf.account_id,
            resource_prefix=cf.resource_prefix,
            api_hostname=cf.api_hostname,
            origin_hostname=cf.origin_hostname,
            access=cf.access,
            gateway=cf.gateway,
            dlp_patterns=load_dlp_patterns(),
        ),
    )
    tunnel = OriginTunnel(
        "origin",
        OriginTunnelArgs(
            account_id=cf.account_id,
            zone_id=cf.zone_id,
            tunnel_name=f"{cf.resource_prefix}-origin",
            origin_hostname=cf.origin_hostname,
            origin_port=cf.origin_port,
            access_team_name=cf.access.team_name,
            access_aud=zero_trust.application.aud,
        ),
    )
    receipt_key = ReceiptKey("receipt-key", ReceiptKeyArgs(version=cf.receipt_key_version))
    worker = EdgeWorker(
        "edge",
        EdgeWorkerArgs(
            account_id=cf.account_id,
            zone_id=cf.zone_id,
            script_name=cf.resource_prefix,
            api_hostname=cf.api_hostname,
            bundle=bundle,
            wrangler=wrangler,
            resource_ids=resource_ids(wrangler, storage, queues, cf.resource_prefix),
            plain_vars=worker_vars(cfg, wrangler["vars"], model_file.path.stat().st_size),
            secrets={
                "CF_ACCESS_CLIENT_ID": zero_trust.service_token.client_id,
                "CF_ACCESS_CLIENT_SECRET": zero_trust.service_token.client_secret,
                "ORIGIN_TOKEN": cf.origin_token,
                "METRICS_TOKEN": cf.metrics_token,
                "RECEIPT_SIGNING_KEY": receipt_key.private_key_pem,
                **(
                    {
                        "SCALE_SIGNAL_ACCESS_KEY_ID": scale_signal.access_key_id,
                        "SCALE_SIGNAL_SECRET_ACCESS_KEY": scale_signal.secret_access_key,
                    }
                    if scale_signal is not None
                    else {}
                ),
            },
            queues=queues.queues,
            protect=cfg.protect,
            after=(storage.schema,),
        ),
    )
    return CloudflareEdge(
        storage=storage,
        queues=queues,
        model=model,
        zero_trust=zero_trust,
        tunnel=tunnel,
        receipt_key=receipt_key,
        worker=worker,
        model_bytes=model_file.path.stat().st_size,
        wrangler=wrangler,
    )


def export_cloudflare(edge: CloudflareEdge, cfg: StackConfig) -> None:
    pulumi.export("apiUrl", edge.worker.url)
    pulumi.export("workerScriptName", edge.worker.script.script_name)
    pulumi.export("workerMigrationTag", edge.worker.migration_tag)
    pulumi.export("originHostname", cfg.cloudflare.origin_hostname)
    pulumi.export("d1DatabaseId", edge.storage.database.uuid)
    pulumi.export("kvNamespaceId", edge.storage.kv_namespace.id)
    pulumi.export("modelsBucket", edge.storage.models_bucket.name)
    if edge.storage.worker_buckets:
        # Where teams drop batch files (inbox/) and find results (outbox/), by wrangler.jsonc binding.
        pulumi.export(
            "workerBuckets",
            {
                b["binding"]: edge.storage.worker_buckets[b["bucket_name"]].name
                for b in edge.wrangler.get("r2_buckets", [])
            },
        )
    pulumi.export("modelObjectKey", edge.model.key)
    pulumi.export("modelSha256", edge.model.sha256)
    pulumi.export("modelUrl", edge.model.url)
    pulumi.export("accessApplicationAud", edge.zero_trust.application.aud)
    # Bound to the Worker as a secret, so it is exported as one: half of a credential is not a plain value.
    pulumi.export("accessServiceTokenClientId", pulumi.Output.secret(edge.zero_trust.service_token.client_id))
    # After this the Worker's requests to the origin fail: rotate before (docs/infra.md, "Service token").
    pulumi.export("accessServiceTokenExpiresAt", edge.zero_trust.service_token.expires_at)
    pulumi.export("dlpProfileIds", edge.zero_trust.dlp_profile_ids)
    pulumi.export("tunnelId", edge.tunnel.tunnel.id)
    # What `python -m runtime.receipt verify --public-key` checks the Worker's receipts against.
    pulumi.export("receiptPublicKey", edge.receipt_key.public_key_pem)
    pulumi.export("receiptKeyVersion", edge.receipt_key.version)
    pulumi.export("tunnelToken", edge.tunnel.token)


def task_start_budget(model_bytes: int, config: AwsConfig) -> StartBudget:
    """The runtime's start budget for this model, or a ConfigError naming the key that would fix it."""
    try:
        return start_budget(model_bytes, config.gpu.model_start_mib_per_second)
    except StartBudgetError as error:
        raise ConfigError(
            ConfigReader().key("modelStartMibPerSecond"),
            f"{error}; raise it if the hosts really fetch and load faster, or bake the model into the image",
            str(error.minimum_mib_per_second),
        ) from error


# These components were children of a `GpuOrigin` component that only forwarded config to them. Each
# alias names the URN it had there, so a stack deployed before keeps its GPU resources instead of
# replacing them (Pulumi carries a parent's alias down to its children).
FORMER_GPU_ORIGIN = "steadytext:aws:GpuOrigin"


def formerly_in_gpu_origin(name: str, former_type: str | None = None) -> pulumi.ResourceOptions:
    parent = pulumi.create_urn(name, FORMER_GPU_ORIGIN)
    alias = (
        pulumi.Alias(parent=parent) if former_type is None else pulumi.Alias(type_=former_type, parent=parent)
    )
    return pulumi.ResourceOptions(aliases=[alias])


def deploy_aws(
    cfg: StackConfig,
    tunnel_token: pulumi.Input[str],
    model_url: pulumi.Input[str],
    model_sha256: pulumi.Input[str],
    model_bytes: int,
) -> None:
    """The GPU origin behind the tunnel (network → images → GPU capacity → service → auto scaling) and the
    Logpush audit bucket; exports what operators look up."""
    cf, aws_cfg = cfg.cloudflare, cfg.aws
    name = cf.resource_prefix
    tags = aws_tags(cfg)
    budget = task_start_budget(model_bytes, aws_cfg)

    network = GpuNetwork(
        name,
        GpuNetworkArgs(
            instance_type=aws_cfg.gpu.instance_type,
            cidr_block=aws_cfg.network.cidr_block,
            vpc_id=aws_cfg.network.vpc_id,
            subnet_ids=aws_cfg.network.subnet_ids,
            tags=tags,
        ),
        opts=formerly_in_gpu_origin(name),
    )
    image = RuntimeImage(
        name,
        RuntimeImageArgs(
            context_dir=program_relative(REPO_ROOT),
            dockerfile=program_relative(CUDA_DOCKERFILE),
            keep_images=aws_cfg.keep_images,
            tags=tags,
        ),
        opts=formerly_in_gpu_origin(name),
    )
    cloudflared = aws_cfg.cloudflared
    sidecar = SidecarImage(
        name,
        SidecarImageArgs(
            cache_prefix=cache_prefix(name),
            upstream_repository=cloudflared.repository,
            tag=cloudflared.tag,
            digest=cloudflared.digest,
            docker_hub_username=cloudflared.docker_hub_username,
            docker_hub_access_token=cloudflared.docker_hub_access_token,
            keep_images=aws_cfg.keep_images,
            tags=tags,
        ),
        opts=formerly_in_gpu_origin(name),
    )
    gpu = aws_cfg.gpu
    capacity = GpuCapacity(
        name,
        GpuCapacityArgs(
            subnet_ids=network.private_subnet_ids,
            security_group_id=network.security_group_id,
            instance_type=gpu.instance_type,
            min_instances=gpu.min_instances,
            max_instances=gpu.max_instances,
            root_volume_gib=gpu.root_volume_gib,
            ami_parameter=gpu.ami_parameter,
            tags=tags,
        ),
        opts=formerly_in_gpu_origin(name),
    )
    service = GpuService(
        name,
        GpuServiceArgs(
            cluster_arn=capacity.cluster_arn,
            capacity_provider_name=capacity.capacity_provider_name,
            subnet_ids=network.private_subnet_ids,
            security_group_id=network.security_group_id,
            image_ref=image.image_ref,
            repository_arn=image.repository_arn,
            cloudflared_image_ref=sidecar.image_ref,
            cloudflared_repository_arn=sidecar.repository_arn,
            start_budget=budget,
            model_url=model_url,
            model_sha256=model_sha256,
            s3_endpoint_url=cf.r2_endpoint,
            region=aws_cfg.region,
            tunnel_token=tunnel_token,
            r2_access_key_id=cf.r2_access_key_id,
            r2_secret_access_key=cf.r2_secret_access_key,
            origin_token=cf.origin_token,
            initial_tasks=aws_cfg.scaling.min_tasks,
            runtime_memory_mib=gpu.runtime_memory_mib,
            runtime_port=cf.origin_port,
            log_retention_days=aws_cfg.log_retention_days,
            tags=tags,
        ),
        opts=formerly_in_gpu_origin(name, former_type="steadytext:aws:InferenceService"),
    )
    scaling = aws_cfg.scaling
    ServiceScaling(
        name,
        ServiceScalingArgs(
            cluster_name=capacity.cluster_name,
            service_name=service.service_name,
            emf_service=service.family,
            min_tasks=scaling.min_tasks,
            max_tasks=scaling.max_tasks,
            target_work_per_task=scaling.target_work_per_task,
            scale_out_cooldown_s=scaling.scale_out_cooldown_s,
            scale_in_cooldown_s=scaling.scale_in_cooldown_s,
            cold_start_s=cold_start_seconds(budget),
        ),
        opts=formerly_in_gpu_origin(name),
    )
    audit = AuditLogging(
        name,
        AuditLoggingArgs(
            cloudflare_account_id=cf.account_id,
            region=aws_cfg.region,
            retention_days=aws_cfg.audit_log_retention_days,
            protect=cfg.protect,
            tags=tags,
        ),
    )
    pulumi.export("imageDigest", image.digest)
    pulumi.export("ecsClusterName", capacity.cluster_name)
    pulumi.export("ecsServiceName", service.service_name)
    pulumi.export("logGroupName", service.log_group_name)
    pulumi.export("auditBucket", audit.bucket_name)
    pulumi.export("auditChallengeFiles", audit.challenge_files)


def run(bundle: WorkerBundle | None = None, wrangler: Mapping[str, Any] | None = None) -> CloudflareEdge:
    """Declare the whole stack. `bundle`: a Worker bundle already built (tests, the offline plan);
    by default wrangler builds one from edge/. `wrangler`: edge/wrangler.jsonc as read (tests give
    another)."""
    cfg = config.load()
    # The Worker's scale-from-zero key comes from AWS before the Worker that holds it is declared.
    signal = (
        ScaleSignal(cfg.cloudflare.resource_prefix, ScaleSignalArgs(tags=aws_tags(cfg)))
        if scales_to_zero(cfg)
        else None
    )
    edge = deploy_cloudflare(cfg, bundle or build_worker_bundle(), signal, wrangler)
    export_cloudflare(edge, cfg)
    deploy_aws(cfg, edge.tunnel.token, edge.model.url, edge.model.sha256, edge.model_bytes)
    return edge

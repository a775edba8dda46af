"""The task's two containers as the ECS API's ``containerDefinitions`` (camelCase JSON, sent as-is).

``runtime`` serves on 127.0.0.1 only; ``cloudflared`` shares the task's network namespace (awsvpc), reaches it
on localhost and carries it through the tunnel. Every credential arrives through ``secrets`` (Secrets Manager
ARNs resolved by ECS at start), never through ``environment``.
"""

from dataclasses import dataclass

from infra.components.aws.scaling import METRIC_NAMESPACE
from infra.components.aws.start_budget import StartBudget
from infra.dockerfile import CUDA_DOCKERFILE, env_value

RUNTIME = "runtime"
CLOUDFLARED = "cloudflared"
CLOUDFLARED_MEMORY_MIB = 256

# container/healthcheck.py, installed by container/Dockerfile.cuda: exits 0 once /readyz answers 200.
HEALTH_CHECK = ["CMD", "python3", "/usr/local/lib/runtime-healthcheck.py"]

# The runtime caches the downloaded GGUF (keyed by its sha256) under RUNTIME_MODEL_CACHE_DIR. Mounting a
# directory of the host there keeps it across task restarts on the same instance: no second download.
MODEL_CACHE_VOLUME = "model-cache"
MODEL_CACHE_HOST_PATH = "/var/lib/steadytext/models"

# Stopping a task (scale-in, deploy, instance drain): ECS stops containers in the reverse of their start
# dependencies, so cloudflared gets SIGTERM first. It stops taking new requests (the edge sends them to
# the other replicas) and waits up to its grace period for the ones in flight, which the runtime behind
# it keeps serving; then the runtime gets SIGTERM and drains whatever is left (docs/interfaces.md) within
# DRAIN_SECONDS. Each container's stopTimeout is its time from SIGTERM to SIGKILL and must exceed its
# drain. 120 s is the largest value the ECS API documents (the Fargate maximum; botocore's
# ContainerDefinition.stopTimeout docs name no maximum for EC2, where it defaults to the agent's
# ECS_CONTAINER_STOP_TIMEOUT, 30 s): staying within it keeps the task definition valid on both.
DRAIN_SECONDS = 90
STOP_TIMEOUT_SECONDS = 120


def model_cache_dir() -> str:
    """Where the image's runtime caches models (the Dockerfile is the one home of that path)."""
    return env_value(CUDA_DOCKERFILE, "RUNTIME_MODEL_CACHE_DIR")


@dataclass(frozen=True)
class SecretRefs:
    """Secrets Manager ARNs, one value each."""

    tunnel_token: str
    r2_access_key_id: str
    r2_secret_access_key: str
    origin_token: str


@dataclass(frozen=True)
class TaskSettings:
    image_ref: str  # <repository>@sha256:<digest>
    model_url: str  # s3://<bucket>/<key> in R2
    model_sha256: str
    s3_endpoint_url: str  # https://<account>.r2.cloudflarestorage.com
    log_group: str
    region: str
    runtime_memory_mib: int
    runtime_port: int  # the tunnel's ingress service is http://localhost:<this port>
    start_budget: StartBudget
    cloudflared_image: str  # <pull-through cache repository>@sha256:<digest>
    emf_service: str  # the runtime's EMF `Service` dimension, which the scaling policy reads


def _logs(settings: TaskSettings, stream_prefix: str) -> dict:
    return {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": settings.log_group,
            "awslogs-region": settings.region,
            "awslogs-stream-prefix": stream_prefix,
        },
    }


def container_definitions(settings: TaskSettings, secrets: SecretRefs) -> list[dict]:
    runtime = {
        "name": RUNTIME,
        "image": settings.image_ref,
        "essential": True,
        "memory": settings.runtime_memory_mib,
        "resourceRequirements": [{"type": "GPU", "value": "1"}],
        "environment": [
            {"name": "RUNTIME_HOST", "value": "127.0.0.1"},
            {"name": "RUNTIME_PORT", "value": str(settings.runtime_port)},
            {"name": "RUNTIME_MODEL_URL", "value": settings.model_url},
            {"name": "RUNTIME_MODEL_SHA256", "value": settings.model_sha256},
            {"name": "RUNTIME_S3_ENDPOINT_URL", "value": settings.s3_endpoint_url},
            {"name": "RUNTIME_N_GPU_LAYERS", "value": "-1"},
            {"name": "RUNTIME_EMF_NAMESPACE", "value": METRIC_NAMESPACE},
            {"name": "RUNTIME_EMF_SERVICE", "value": settings.emf_service},
            {"name": "RUNTIME_DRAIN_SECONDS", "value": str(DRAIN_SECONDS)},
        ],
        "secrets": [
            {"name": "AWS_ACCESS_KEY_ID", "valueFrom": secrets.r2_access_key_id},
            {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": secrets.r2_secret_access_key},
            {"name": "RUNTIME_AUTH_TOKEN", "valueFrom": secrets.origin_token},
        ],
        "mountPoints": [
            {"sourceVolume": MODEL_CACHE_VOLUME, "containerPath": model_cache_dir(), "readOnly": False}
        ],
        "healthCheck": {
            "command": HEALTH_CHECK,
            "interval": settings.start_budget.interval_s,
            "timeout": 5,
            "retries": settings.start_budget.retries,
            "startPeriod": settings.start_budget.start_period_s,
        },
        # cloudflared waits for this container to be HEALTHY; ECS applies the startTimeout of the container
        # waited for, so it is set here (on the sidecar it would be ignored).
        "startTimeout": settings.start_budget.start_timeout_s,
        "stopTimeout": STOP_TIMEOUT_SECONDS,
        "logConfiguration": _logs(settings, RUNTIME),
    }
    cloudflared = {
        "name": CLOUDFLARED,
        "image": settings.cloudflared_image,
        "essential": True,
        "memory": CLOUDFLARED_MEMORY_MIB,
        "command": ["tunnel", "--no-autoupdate", "--grace-period", f"{DRAIN_SECONDS}s", "run"],
        "secrets": [{"name": "TUNNEL_TOKEN", "valueFrom": secrets.tunnel_token}],
        # A replica joins the tunnel only once the runtime can answer.
        "dependsOn": [{"containerName": RUNTIME, "condition": "HEALTHY"}],
        "stopTimeout": STOP_TIMEOUT_SECONDS,
        "logConfiguration": _logs(settings, CLOUDFLARED),
    }
    return [runtime, cloudflared]


def task_volumes() -> list[dict]:
    """The task definition's `volumes` (Pulumi's shape): the host directory behind the model cache."""
    return [{"name": MODEL_CACHE_VOLUME, "host_path": MODEL_CACHE_HOST_PATH}]

"""The task's two containers as the ECS API's ``containerDefinitions`` (camelCase JSON, sent as-is).

``runtime`` serves on 127.0.0.1 only; ``cloudflared`` shares the task's network namespace (awsvpc), reaches it
on localhost and carries it through the tunnel. Every credential arrives through ``secrets`` (Secrets Manager
ARNs resolved by ECS at start), never through ``environment``.
"""

from dataclasses import dataclass

RUNTIME = "runtime"
CLOUDFLARED = "cloudflared"
# Pinned: a new cloudflared release changes the tunnel transport; upgrade it on purpose, with the stack.
CLOUDFLARED_IMAGE = "cloudflare/cloudflared:2025.11.1"
CLOUDFLARED_MEMORY_MIB = 256

# Model download from R2 + load can take minutes on a cold instance; ECS ignores failed checks meanwhile.
HEALTH_START_PERIOD_S = 300
HEALTH_INTERVAL_S = 15
HEALTH_RETRIES = 4
# cloudflared waits for the runtime to be healthy, so a replica joins the tunnel only when it can answer.
CLOUDFLARED_START_TIMEOUT_S = HEALTH_START_PERIOD_S + HEALTH_INTERVAL_S * (HEALTH_RETRIES + 2)
# container/healthcheck.py, installed by container/Dockerfile.cuda: exits 0 once /readyz answers 200.
HEALTH_CHECK = ["CMD", "python3", "/usr/local/lib/runtime-healthcheck.py"]


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
        ],
        "secrets": [
            {"name": "AWS_ACCESS_KEY_ID", "valueFrom": secrets.r2_access_key_id},
            {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": secrets.r2_secret_access_key},
            {"name": "RUNTIME_AUTH_TOKEN", "valueFrom": secrets.origin_token},
        ],
        "healthCheck": {
            "command": HEALTH_CHECK,
            "interval": HEALTH_INTERVAL_S,
            "timeout": 5,
            "retries": HEALTH_RETRIES,
            "startPeriod": HEALTH_START_PERIOD_S,
        },
        "stopTimeout": 30,  # let in-flight generations finish after SIGTERM
        "logConfiguration": _logs(settings, RUNTIME),
    }
    cloudflared = {
        "name": CLOUDFLARED,
        "image": CLOUDFLARED_IMAGE,
        "essential": True,
        "memory": CLOUDFLARED_MEMORY_MIB,
        "command": ["tunnel", "--no-autoupdate", "run"],
        "secrets": [{"name": "TUNNEL_TOKEN", "valueFrom": secrets.tunnel_token}],
        "dependsOn": [{"containerName": RUNTIME, "condition": "HEALTHY"}],
        "startTimeout": CLOUDFLARED_START_TIMEOUT_S,
        "logConfiguration": _logs(settings, CLOUDFLARED),
    }
    return [runtime, cloudflared]

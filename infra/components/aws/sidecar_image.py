"""The cloudflared sidecar image: pulled from Docker Hub once, through an ECR pull-through cache, run by
digest.

Anonymous Docker Hub pulls are limited per IP address, and every task start on a fresh instance would pull
cloudflared from behind the one NAT address. Instead ECR fetches it from Docker Hub with the stack's Docker
Hub login (a Secrets Manager secret, which ECR requires to be named `ecr-pullthroughcache/…`) and serves it
from the account's registry; the tasks pull `<cache repository>@<pinned digest>` with the execution role.
cloudflared is published on Docker Hub only, so Docker Hub is the upstream (ECR Public has no official copy).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.aws.image import lifecycle_policy
from infra.components.aws.pull_through import CachedImage

DOCKER_HUB = "registry-1.docker.io"
# ECR: a pull-through credential's secret name must begin with this (CreatePullThroughCacheRule's pattern).
CREDENTIAL_SECRET_PREFIX = "ecr-pullthroughcache/"
CACHE_PREFIX_MAX = 30  # CreatePullThroughCacheRule.ecrRepositoryPrefix: 2..30 characters


def cache_prefix(resource_prefix: str) -> str:
    """The stack's own pull-through prefix (two stacks may share an account): `<resourcePrefix>-hub`, or, when
    that is longer than ECR allows, a shortened prefix with a hash that keeps different stacks apart."""
    readable = f"{resource_prefix}-hub"
    if len(readable) <= CACHE_PREFIX_MAX:
        return readable
    digest = hashlib.sha256(resource_prefix.encode()).hexdigest()[:6]
    head = readable[: CACHE_PREFIX_MAX - len(digest) - len("--hub")].rstrip("-")
    return f"{head}-{digest}-hub"


@dataclass(frozen=True)
class SidecarImageArgs:
    cache_prefix: str
    upstream_repository: str  # Docker Hub namespace/repository, e.g. cloudflare/cloudflared
    tag: str
    digest: str
    docker_hub_username: str
    docker_hub_access_token: pulumi.Input[str]
    keep_images: int = 10
    tags: dict[str, str] = field(default_factory=dict)


class SidecarImage(pulumi.ComponentResource):
    image_ref: pulumi.Output[str]
    repository_arn: pulumi.Output[str]

    def __init__(self, name: str, args: SidecarImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("steadytext:aws:SidecarImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        credential = aws.secretsmanager.Secret(
            f"{name}-docker-hub",
            name_prefix=f"{CREDENTIAL_SECRET_PREFIX}{args.cache_prefix}-",
            description="Docker Hub login of the ECR pull-through cache for the cloudflared sidecar",
            tags=args.tags,
            opts=child,
        )
        credential_value = aws.secretsmanager.SecretVersion(
            f"{name}-docker-hub",
            secret_id=credential.arn,
            secret_string=pulumi.Output.secret(args.docker_hub_access_token).apply(
                lambda token: json.dumps({"username": args.docker_hub_username, "accessToken": token})
            ),
            opts=child,
        )
        rule = aws.ecr.PullThroughCacheRule(
            f"{name}-docker-hub",
            ecr_repository_prefix=args.cache_prefix,
            upstream_registry_url=DOCKER_HUB,
            credential_arn=credential.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[credential_value]),
        )
        # Declared (not left for the first pull to create) so it has the stack's scanning, encryption and
        # lifecycle, goes away with the stack, and the task needs no ecr:CreateRepository.
        repository = aws.ecr.Repository(
            f"{name}-cloudflared",
            name=f"{args.cache_prefix}/{args.upstream_repository}",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "AES256"}],
            force_delete=True,
            tags=args.tags,
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-cloudflared",
            repository=repository.name,
            policy=json.dumps(lifecycle_policy(args.keep_images)),
            opts=child,
        )
        cached = CachedImage(
            f"{name}-cloudflared",
            {
                "registry": repository.repository_url.apply(lambda url: url.split("/", 1)[0]),
                "repository": repository.name,
                "tag": args.tag,
                "digest": args.digest,
            },
            pulumi.ResourceOptions(parent=self, depends_on=[rule]),
        )

        self.repository_arn = repository.arn
        self.image_ref = pulumi.Output.concat(repository.repository_url, "@", cached.digest)
        self.register_outputs({"image_ref": self.image_ref, "repository_arn": self.repository_arn})

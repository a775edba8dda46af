"""The runtime's container image: an ECR repository and the CUDA image built from ``container/`` and pushed.

The task definition uses ``image_ref`` (``<repository>@sha256:<digest>``), so a deploy runs exactly the bytes
this build pushed, whatever happens to the tag afterwards.

Rebuilds happen only when an input of the image changes: the build context is filtered by the repository's
`.dockerignore` (an allow-list of what the Dockerfiles copy), and its location and the Dockerfile's are
given relative to the directory Pulumi runs the program and its providers in, because pulumi-docker-build
diffs them as strings (an absolute path differs between checkouts, and would rebuild the CUDA image).

No registry login is passed to the build: a login given as an input would be kept in the stack state, and
an ECR token expires after 12 hours, after which `pulumi refresh` and `destroy` of the image fail with 403
(pulumi/pulumi-docker-build#424). The provider uses the deploying machine's Docker credentials instead (the
ECR credential helper, `aws ecr get-login-password | docker login`, or aws-actions/amazon-ecr-login in CI),
which are fresh at every run and never stored. See docs/infra-aws.md.
"""

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

BUILD_PLATFORM = "linux/amd64"  # the GPU instances (g4dn/g5/g6) are x86_64
CACHE_TAG = "buildcache"


@dataclass(frozen=True)
class RuntimeImageArgs:
    # Both relative to Pulumi's working directory (see infra/build_context.py), never absolute.
    context_dir: str  # the repository root: the Dockerfile copies runtime/ and pyproject.toml from it
    dockerfile: str  # container/Dockerfile.cuda
    keep_images: int = 10
    tag: str = "latest"
    tags: dict[str, str] = field(default_factory=dict)


def lifecycle_policy(keep_images: int) -> dict:
    """ECR lifecycle rule: expire everything but the newest ``keep_images`` images (build cache included)."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"keep the last {keep_images} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_images,
                },
                "action": {"type": "expire"},
            }
        ]
    }


class RuntimeImage(pulumi.ComponentResource):
    repository_url: pulumi.Output[str]
    repository_arn: pulumi.Output[str]
    digest: pulumi.Output[str]
    image_ref: pulumi.Output[str]

    def __init__(self, name: str, args: RuntimeImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("steadytext:aws:RuntimeImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        repository = aws.ecr.Repository(
            f"{name}-runtime",
            image_scanning_configuration={"scan_on_push": True},
            image_tag_mutability="MUTABLE",  # the tag moves with each build; deploys pin the digest
            encryption_configurations=[{"encryption_type": "AES256"}],
            force_delete=True,  # images are rebuilt from source; a stack teardown must not stall on them
            tags=args.tags,
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-runtime",
            repository=repository.name,
            policy=json.dumps(lifecycle_policy(args.keep_images)),
            opts=child,
        )

        cache_ref = repository.repository_url.apply(lambda url: f"{url}:{CACHE_TAG}")
        image = docker_build.Image(
            f"{name}-runtime",
            context={"location": args.context_dir},
            dockerfile={"location": args.dockerfile},
            platforms=[BUILD_PLATFORM],
            tags=[repository.repository_url.apply(lambda url: f"{url}:{args.tag}")],
            push=True,
            # A CUDA build takes many minutes: `pulumi preview` (CI on every PR) shows the digest as unknown.
            build_on_preview=False,
            cache_from=[{"registry": {"ref": cache_ref}}],
            # ECR accepts registry caches only as an image manifest with OCI media types.
            cache_to=[
                {
                    "registry": {
                        "ref": cache_ref,
                        "mode": "max",
                        "image_manifest": True,
                        "oci_media_types": True,
                    }
                }
            ],
            opts=child,
        )

        self.repository_url = repository.repository_url
        self.repository_arn = repository.arn
        self.digest = image.digest
        self.image_ref = pulumi.Output.concat(repository.repository_url, "@", image.digest)
        self.register_outputs(
            {
                "repository_url": self.repository_url,
                "repository_arn": self.repository_arn,
                "digest": self.digest,
                "image_ref": self.image_ref,
            }
        )

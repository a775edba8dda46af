"""The runtime image: ECR repository (scan on push, keep the last N), the CUDA Dockerfile built for
linux/amd64 with a registry cache, from a context given the same way in every checkout, and pushed with the
deploying machine's Docker login, so no 12-hour ECR token is ever an input kept in the stack state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra import REPO_ROOT
from infra.build_context import program_dir
from infra.dockerfile import CUDA_DOCKERFILE
from tests.infra.aws_harness import aws_run, custom_run, repository

STACKS = ["dev", "prod"]


def lifecycle(run, suffix: str):
    (policy,) = [p for p in run.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy") if p.name.endswith(suffix)]
    return policy


@pytest.mark.parametrize("stack", STACKS)
def test_the_repository_scans_on_push_and_keeps_the_last_images(stack):
    run = aws_run(stack)
    assert repository(run, "-runtime").input("imageScanningConfiguration") == {"scanOnPush": True}
    policy = json.loads(lifecycle(run, "-runtime").input("policy"))
    (rule,) = policy["rules"]
    assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10}
    assert rule["action"] == {"type": "expire"}


def test_how_many_images_are_kept_is_configurable():
    policy = json.loads(lifecycle(custom_run(), "-runtime").input("policy"))
    assert policy["rules"][0]["selection"]["countNumber"] == 3


@pytest.mark.parametrize("stack", STACKS)
def test_the_cuda_image_is_built_for_amd64_from_the_repository_and_pushed(stack):
    build = aws_run(stack).one("docker-build:index:Image")
    assert build.input("push") is True
    assert build.input("platforms") == ["linux/amd64"]
    # Pulumi runs the program and the docker-build provider in Pulumi.yaml's `main:` directory.
    assert program_dir() == REPO_ROOT / "infra"
    context = program_dir() / build.input("context")["location"]
    dockerfile = program_dir() / build.input("dockerfile")["location"]
    assert context.resolve() == REPO_ROOT
    assert dockerfile.resolve() == CUDA_DOCKERFILE and dockerfile.is_file()
    assert "-DGGML_CUDA=on" in dockerfile.read_text()


@pytest.mark.parametrize("stack", STACKS)
def test_the_build_locations_are_the_same_in_every_checkout(stack):
    """pulumi-docker-build's Diff compares context.location and the Dockerfile as strings: an absolute path
    would differ between a laptop and CI and rebuild the CUDA image on every switch."""
    build = aws_run(stack).one("docker-build:index:Image")
    locations = [build.input("context")["location"], build.input("dockerfile")["location"]]
    assert locations == ["..", "../container/Dockerfile.cuda"]
    assert not any(Path(location).is_absolute() or str(REPO_ROOT) in location for location in locations)


@pytest.mark.parametrize("stack", STACKS)
def test_no_registry_token_is_an_input_of_the_image(stack):
    """Inputs are kept in the state: a 12-hour ECR token there breaks `pulumi refresh` and `destroy` of the
    image the next day (pulumi-docker-build#424). The push uses the deploying machine's Docker login."""
    run = aws_run(stack)
    build = run.one("docker-build:index:Image")
    assert build.input("registries") is None
    assert not [token for token, _ in run.invocations if token.startswith("aws:ecr/getAuthorization")]
    assert not [token for token, _ in run.invocations if token.startswith("aws:ecr/getCredentials")]


@pytest.mark.parametrize("stack", STACKS)
def test_builds_share_a_registry_cache_in_the_same_repository(stack):
    build = aws_run(stack).one("docker-build:index:Image")
    repository_url = build.input("tags")[0].rsplit(":", 1)[0]
    assert build.input("cacheFrom") == [{"registry": {"ref": f"{repository_url}:buildcache"}}]
    (cache_to,) = build.input("cacheTo")
    # ECR stores a cache only as an OCI image manifest.
    assert cache_to["registry"] == {
        "ref": f"{repository_url}:buildcache",
        "mode": "max",
        "imageManifest": True,
        "ociMediaTypes": True,
    }


def test_previews_do_not_build_the_cuda_image():
    assert aws_run("dev").one("docker-build:index:Image").input("buildOnPreview") is False

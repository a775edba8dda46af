"""The runtime image: ECR repository (scan on push, keep the last N), the CUDA Dockerfile built for
linux/amd64 with a registry cache, pushed with a short-lived ECR login that stays secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra import REPO_ROOT
from infra.mocks.aws import TEST_ECR_PASSWORD
from tests.infra.aws_harness import aws_run, custom_run
from tests.infra.conftest import plaintext_leaks

STACKS = ["dev", "prod"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_repository_scans_on_push_and_keeps_the_last_images(stack):
    run = aws_run(stack)
    repository = run.one("aws:ecr/repository:Repository")
    assert repository.input("imageScanningConfiguration") == {"scanOnPush": True}
    policy = json.loads(run.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").input("policy"))
    (rule,) = policy["rules"]
    assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10}
    assert rule["action"] == {"type": "expire"}


def test_how_many_images_are_kept_is_configurable():
    policy = json.loads(custom_run().one("aws:ecr/lifecyclePolicy:LifecyclePolicy").input("policy"))
    assert policy["rules"][0]["selection"]["countNumber"] == 3


@pytest.mark.parametrize("stack", STACKS)
def test_the_cuda_image_is_built_for_amd64_from_the_repository_and_pushed(stack):
    build = aws_run(stack).one("docker-build:index:Image")
    assert build.input("push") is True
    assert build.input("platforms") == ["linux/amd64"]
    context = Path(build.input("context")["location"])
    dockerfile = Path(build.input("dockerfile")["location"])
    assert context == REPO_ROOT
    assert dockerfile == REPO_ROOT / "container" / "Dockerfile.cuda" and dockerfile.is_file()
    assert "-DGGML_CUDA=on" in dockerfile.read_text()


@pytest.mark.parametrize("stack", STACKS)
def test_the_push_logs_in_to_this_registry_with_a_secret_password(stack):
    run = aws_run(stack)
    build = run.one("docker-build:index:Image")
    (registry,) = build.input("registries")
    repository_url = build.input("tags")[0].rsplit(":", 1)[0]
    assert registry["address"] == repository_url
    assert (registry["username"], registry["password"]) == ("AWS", TEST_ECR_PASSWORD)
    assert plaintext_leaks(build.inputs, [TEST_ECR_PASSWORD]) == []
    (login,) = [
        args
        for token, args in run.invocations
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken"
    ]
    assert login["registryId"] == "123456789012"


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

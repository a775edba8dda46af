"""cloudflared through an ECR pull-through cache: the Docker Hub login in a Secrets Manager secret ECR
accepts, a per-stack cache rule, the stack's own cache repository, and the pinned digest pulled into the
cache by tag during the deploy (checked against a registry on loopback that behaves like ECR's cache)
before any task names it."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.session
import pytest

from infra.components.aws.pull_through import (
    CachedImageProvider,
    CacheWarmError,
    ecr_authorization,
    warm_cache,
)
from infra.components.aws.sidecar_image import cache_prefix
from tests.infra.aws_harness import aws_run, repository
from tests.infra.conftest import PROJECT, TEST_SECRETS, plaintext_leaks

STACKS = ["dev", "prod"]
RULE = "aws:ecr/pullThroughCacheRule:PullThroughCacheRule"
CACHED_IMAGE = "pulumi-python:dynamic:Resource"


def ecr_rule_shape(member: str) -> dict:
    model = botocore.session.get_session().get_service_model("ecr")
    return model.operation_model("CreatePullThroughCacheRule").input_shape.members[member].metadata


def docker_hub_secret(run):
    (version,) = [
        v for v in run.of_type("aws:secretsmanager/secretVersion:SecretVersion") if "docker-hub" in v.name
    ]
    (secret,) = [s for s in run.of_type("aws:secretsmanager/secret:Secret") if "docker-hub" in s.name]
    return secret, version


@pytest.mark.parametrize("stack", STACKS)
def test_the_cache_rule_pulls_from_docker_hub_with_a_login_ecr_accepts(stack):
    run = aws_run(stack)
    rule = run.one(RULE)
    secret, version = docker_hub_secret(run)
    assert rule.input("upstreamRegistryUrl") == "registry-1.docker.io"
    # ECR takes only secrets named ecr-pullthroughcache/… (the API's credentialArn pattern).
    assert secret.input("namePrefix").startswith("ecr-pullthroughcache/")
    arn = rule.input("credentialArn")
    assert arn == version.input("secretId")
    shape = ecr_rule_shape("credentialArn")
    assert re.fullmatch(shape["pattern"], arn) and shape["min"] <= len(arn) <= shape["max"]
    # The secret holds the Docker Hub login in the form ECR reads, and only ever as a secret.
    login = json.loads(version.input("secretString"))
    assert login == {
        "username": "steadytexttest",
        "accessToken": TEST_SECRETS[f"{PROJECT}:dockerHubAccessToken"],
    }
    assert plaintext_leaks(version.inputs, [login["accessToken"]]) == []
    assert version.urn in rule.dependencies  # the rule never points at an empty secret


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_has_its_own_cache_prefix_and_repository(stack):
    run = aws_run(stack)
    prefix = run.one(RULE).input("ecrRepositoryPrefix")
    shape = ecr_rule_shape("ecrRepositoryPrefix")
    assert prefix == f"steadytext-{stack}-hub"
    assert re.fullmatch(shape["pattern"], prefix) and shape["min"] <= len(prefix) <= shape["max"]
    cache = repository(run, "-cloudflared")
    assert cache.input("name") == f"{prefix}/cloudflare/cloudflared"
    assert cache.input("imageScanningConfiguration") == {"scanOnPush": True}
    assert cache.input("forceDelete") is True


@pytest.mark.parametrize(
    "resource_prefix",
    ["steadytext", "a-very-long-resource-prefix-for-staging", "a-very-long-resource-prefix-for-stagin2"],
)
def test_a_long_resource_prefix_still_gives_a_valid_distinct_cache_prefix(resource_prefix):
    shape = ecr_rule_shape("ecrRepositoryPrefix")
    prefix = cache_prefix(resource_prefix)
    assert re.fullmatch(shape["pattern"], prefix) and len(prefix) <= shape["max"]
    others = {
        cache_prefix(p)
        for p in ("a-very-long-resource-prefix-for-staging", "a-very-long-resource-prefix-for-stagin2")
    }
    assert len(others) == 2


@pytest.mark.parametrize("stack", STACKS)
def test_the_pinned_digest_is_pulled_into_the_cache_before_a_task_names_it(stack):
    run = aws_run(stack)
    (cached,) = [r for r in run.of_type(CACHED_IMAGE) if r.name.endswith("-cloudflared")]
    cache = repository(run, "-cloudflared")
    assert cached.input("registry") == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert cached.input("repository") == cache.input("name")
    assert (cached.input("tag"), cached.input("digest")) == (
        "2025.11.1",
        "sha256:89ee50efb1e9cb2ae30281a8a404fed95eb8f02f0a972617526f8c5b417acae2",
    )
    assert run.one(RULE).urn in cached.dependencies
    task = run.one("aws:ecs/taskDefinition:TaskDefinition")
    assert cached.urn in task.property_dependencies["containerDefinitions"]


# A registry on loopback that behaves like ECR's pull-through cache: a pull by tag imports the image from
# "upstream"; a pull by digest of something not imported yet is not found (aws/containers-roadmap#2837).
AUTH = "Basic QVdTOnRva2Vu"


def manifest(layers: str) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": [layers]}
    ).encode()


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


AMD64 = manifest("amd64")
ARM64 = manifest("arm64")
INDEX = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"digest": digest_of(ARM64), "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": digest_of(AMD64), "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }
).encode()
REPOSITORY = "steadytext-dev-hub/cloudflare/cloudflared"


class FakeCache:
    def __init__(self) -> None:
        self.upstream_tags = {"2025.11.1": INDEX}
        self.upstream = {digest_of(body): body for body in (INDEX, AMD64, ARM64)}
        self.cached: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []

    def answer(self, method: str, path: str, authorization: str | None) -> tuple[int, bytes]:
        self.requests.append((method, path))
        if authorization != AUTH:
            return 401, b'{"errors":[{"code":"DENIED","message":"Not Authorized"}]}'
        prefix = f"/v2/{REPOSITORY}/manifests/"
        if not path.startswith(prefix):
            return 404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}'
        reference = path[len(prefix) :]
        if reference.startswith("sha256:"):
            body = self.cached.get(reference)
            return (200, body) if body is not None else (404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
        body = self.upstream_tags.get(reference)
        if body is None:
            return 404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'
        self.cached[digest_of(body)] = body  # the import: the index and what it lists
        for entry in json.loads(body).get("manifests", []):
            self.cached[entry["digest"]] = self.upstream[entry["digest"]]
        return 200, body


@pytest.fixture
def registry():
    cache = FakeCache()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, with_body: bool) -> None:
            status, body = cache.answer(self.command, self.path, self.headers.get("Authorization"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self):  # noqa: N802
            self._reply(True)

        def do_HEAD(self):  # noqa: N802
            self._reply(False)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", cache
    server.shutdown()


def test_warming_imports_the_tag_and_proves_the_pinned_digest_is_served(registry):
    url, cache = registry
    assert digest_of(INDEX) not in cache.cached
    platform = warm_cache(url, REPOSITORY, "2025.11.1", digest_of(INDEX), AUTH)
    assert platform == digest_of(AMD64)
    assert cache.requests[0] == ("GET", f"/v2/{REPOSITORY}/manifests/2025.11.1")  # by tag first: the import
    assert ("HEAD", f"/v2/{REPOSITORY}/manifests/{digest_of(INDEX)}") in cache.requests
    assert ("HEAD", f"/v2/{REPOSITORY}/manifests/{digest_of(AMD64)}") in cache.requests


def test_a_digest_pull_alone_would_not_find_the_image(registry):
    """Why the warm-up exists: what the tasks do (pull by digest) fails on a cold cache."""
    url, cache = registry
    status, _ = cache.answer("GET", f"/v2/{REPOSITORY}/manifests/{digest_of(INDEX)}", AUTH)
    assert status == 404


def test_a_tag_moved_upstream_stops_the_deploy_naming_both_digests(registry):
    url, cache = registry
    moved = INDEX.replace(b"arm64", b"arm64 ")
    cache.upstream_tags["2025.11.1"] = moved
    with pytest.raises(CacheWarmError) as caught:
        warm_cache(url, REPOSITORY, "2025.11.1", digest_of(INDEX), AUTH)
    message = str(caught.value)
    assert digest_of(moved) in message and digest_of(INDEX) in message and "cloudflaredImageDigest" in message


def test_a_refused_login_names_what_to_check(registry):
    url, _ = registry
    with pytest.raises(
        CacheWarmError, match=r"HTTP 401 .*Not Authorized.*ecr:BatchImportUpstreamImage.*dockerHub"
    ):
        warm_cache(url, REPOSITORY, "2025.11.1", digest_of(INDEX), "Basic d3Jvbmc=")


def test_an_image_without_an_amd64_build_is_refused(registry):
    url, cache = registry
    only_arm = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [{"digest": digest_of(ARM64), "platform": {"os": "linux", "architecture": "arm64"}}],
        }
    ).encode()
    cache.upstream_tags["arm-only"] = only_arm
    with pytest.raises(CacheWarmError, match="no linux/amd64 image"):
        warm_cache(url, REPOSITORY, "arm-only", digest_of(only_arm), AUTH)


def test_the_registry_login_is_a_fresh_ecr_token_and_the_state_keeps_none(moto_s3_endpoint):
    client = boto3.client(
        "ecr",
        endpoint_url=moto_s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    header = ecr_authorization("123456789012.dkr.ecr.us-east-1.amazonaws.com", client)
    assert header.startswith("Basic ")
    assert (
        base64.b64decode(header.removeprefix("Basic ")).decode().startswith("AWS:")
    )  # user AWS, token password
    with pytest.raises(CacheWarmError, match="not an ECR registry host"):
        ecr_authorization("registry-1.docker.io", client)
    # What the provider keeps in the stack state: where, which tag and digest; no credential.
    state = CachedImageProvider()._state(
        {"registry": "r", "repository": REPOSITORY, "tag": "2025.11.1", "digest": digest_of(INDEX)}
    )
    assert set(state) == {"registry", "repository", "tag", "digest"}


def test_only_a_new_digest_or_place_warms_the_cache_again():
    provider = CachedImageProvider()
    old = {"registry": "r", "repository": REPOSITORY, "tag": "2025.11.1", "digest": digest_of(INDEX)}
    assert provider.diff("id", old, dict(old)).changes is False
    assert provider.diff("id", old, {**old, "digest": digest_of(AMD64)}).changes is True
    assert provider.diff("id", old, {**old, "repository": "other/cloudflared"}).replaces == ["repository"]

"""Fills the ECR pull-through cache with the pinned sidecar image during `pulumi up`, and proves the pin.

ECR's pull-through cache imports an image from upstream when it is pulled **by tag**; a first pull by digest
of an image the cache does not hold yet fails as "not found" (aws/containers-roadmap#2837). The tasks pull
cloudflared by digest, so before the task definition that names the digest is registered, this resource pulls
the manifest once by tag through the cache (the import), checks that the bytes it got hash to the pinned
digest, and checks that the digest, and the linux/amd64 image inside it, can now be read from the cache.

It runs again only when the pinned digest or where it goes changes. It keeps no credential: the registry
login is a 12-hour ECR token fetched with the deploying identity's AWS credentials at the moment it is used.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.request
from typing import Any

import pulumi

from infra.components.digest_provider import DigestProvider

ECR_REGISTRY = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$"
)
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
PLATFORM = {"os": "linux", "architecture": "amd64"}  # the GPU instances


class CacheWarmError(RuntimeError):
    """The pull-through cache cannot serve the pinned image; the message says why and what to change."""


def _send(method: str, url: str, authorization: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        method=method,
        headers={"Authorization": authorization, "Accept": ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _fail(what: str, status: int, body: bytes) -> CacheWarmError:
    detail = body.decode("utf-8", "replace").strip()[:500]
    hint = ""
    if status in (401, 403):
        hint = (
            "; the deploying identity needs ecr:BatchImportUpstreamImage on the cache repository, and the "
            "cache rule's Docker Hub login (dockerHubUsername, dockerHubAccessToken) must be valid"
        )
    return CacheWarmError(f"{what}: HTTP {status} {detail}{hint}")


def warm_cache(base_url: str, repository: str, tag: str, digest: str, authorization: str) -> str:
    """Pull `repository:tag` through the cache at `base_url`, check it is `digest`, and that the digest and
    its linux/amd64 image are now cached. Returns the digest of that platform image."""
    manifests = f"{base_url}/v2/{repository}/manifests"
    status, body = _send("GET", f"{manifests}/{tag}", authorization)
    if status != 200:
        raise _fail(f"pulling {repository}:{tag} through the cache", status, body)
    resolved = "sha256:" + hashlib.sha256(body).hexdigest()
    if resolved != digest:
        raise CacheWarmError(
            f"{repository}:{tag} is now {resolved}, not the pinned cloudflaredImageDigest {digest}: the tag "
            "was "
            "moved upstream; check that release and pin its digest, or pin the tag that matches"
        )
    manifest = json.loads(body)
    status, body = _send("HEAD", f"{manifests}/{digest}", authorization)
    if status != 200:
        raise _fail(f"reading {repository}@{digest} from the cache after importing it", status, body)
    if "manifests" not in manifest:  # a single-platform image
        return digest
    platform_digests = [
        entry["digest"]
        for entry in manifest["manifests"]
        if all((entry.get("platform") or {}).get(key) == value for key, value in PLATFORM.items())
    ]
    if not platform_digests:
        raise CacheWarmError(f"{repository}@{digest} has no linux/amd64 image; the GPU instances are x86_64")
    status, body = _send("HEAD", f"{manifests}/{platform_digests[0]}", authorization)
    if status != 200:
        raise _fail(f"reading the linux/amd64 image {platform_digests[0]} from the cache", status, body)
    return platform_digests[0]


def ecr_authorization(registry: str, ecr_client: Any = None) -> str:
    """`Authorization` header value for an ECR registry host, from a fresh GetAuthorizationToken."""
    match = ECR_REGISTRY.fullmatch(registry)
    if match is None:
        raise CacheWarmError(f"{registry} is not an ECR registry host")
    if ecr_client is None:
        import boto3

        ecr_client = boto3.client("ecr", region_name=match.group("region"))
    data = ecr_client.get_authorization_token(registryIds=[match.group("account")])["authorizationData"]
    return f"Basic {data[0]['authorizationToken']}"  # base64 of "AWS:<password>", the Basic form already


class CachedImageProvider(DigestProvider):
    """Deleting the resource leaves the cached image: it goes with its repository."""

    location_keys = ("registry", "repository")
    digest_key = "digest"
    extra_state_keys = ("tag",)

    def apply(self, props: dict[str, Any]) -> None:
        warm_cache(
            f"https://{props['registry']}",
            props["repository"],
            props["tag"],
            props["digest"],
            ecr_authorization(props["registry"]),
        )

    def resource_id(self, props: dict[str, Any]) -> str:
        return f"{props['registry']}/{props['repository']}@{props['digest']}"


class CachedImage(pulumi.dynamic.Resource):
    digest: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(CachedImageProvider(), name, props, opts)

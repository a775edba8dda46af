"""A deployed stack keeps each dynamic resource's provider pickled by import path, and `pulumi refresh`
and the delete of a replaced or removed resource load it from the state, not from the program. Each
provider recorded here, exactly as `pulumi.dynamic` serialized it for stacks deployed from some tree, must
still load, in a fresh interpreter as in the dynamic provider's process, as the class the program uses now.
A provider that moves keeps its old path through infra.components.MOVED_MODULES."""

from __future__ import annotations

import inspect
import json
import pkgutil
import subprocess
import sys
from importlib import import_module
from pathlib import Path

from pulumi.dynamic import ResourceProvider
from pulumi.dynamic.dynamic import serialize_provider

import infra.components

REPO = Path(__file__).resolve().parents[2]

# serialize_provider's output per import path; append (never remove) when a provider is added or moves.
RECORDED = {
    # Stacks deployed from 5c5fe87 up to the move into components/cloudflare/ (df315c3).
    "infra.components.d1_schema.D1SchemaProvider": (
        "gASVNgAAAAAAAACMGmluZnJhLmNvbXBvbmVudHMuZDFfc2NoZW1hlIwQRDFTY2hlbWFQcm92aWRlcpSTlCmBlC4="
    ),
    "infra.components.model_artifact.ModelObjectProvider": (
        "gASVPgAAAAAAAACMH2luZnJhLmNvbXBvbmVudHMubW9kZWxfYXJ0aWZhY3SUjBNNb2RlbE9iamVjdFByb3ZpZGVylJOUKYGULg=="
    ),
    "infra.components.logpush_challenge.ChallengeTokenProvider": (
        "gASVRAAAAAAAAACMImluZnJhLmNvbXBvbmVudHMubG9ncHVzaF9jaGFsbGVuZ2WUjBZDaGFsbGVuZ2VUb2tlblByb3ZpZGVylJOUKYGULg=="
    ),
    "infra.components.rotation_window.RotationWindowProvider": (
        "gASVQgAAAAAAAACMIGluZnJhLmNvbXBvbmVudHMucm90YXRpb25fd2luZG93lIwWUm90YXRpb25XaW5kb3dQcm92aWRlcpSTlCmBlC4="
    ),
    # Since df315c3 (the pull-through cache warmer since 086f1e9).
    "infra.components.aws.pull_through.CachedImageProvider": (
        "gASVQAAAAAAAAACMIWluZnJhLmNvbXBvbmVudHMuYXdzLnB1bGxfdGhyb3VnaJSME0NhY2hlZEltYWdlUHJvdmlkZXKUk5QpgZQu"
    ),
    "infra.components.cloudflare.d1_schema.D1SchemaProvider": (
        "gASVQQAAAAAAAACMJWluZnJhLmNvbXBvbmVudHMuY2xvdWRmbGFyZS5kMV9zY2hlbWGUjBBEMVNjaGVtYVByb3ZpZGVylJOUKYGULg=="
    ),
    "infra.components.cloudflare.model_artifact.ModelObjectProvider": (
        "gASVSQAAAAAAAACMKmluZnJhLmNvbXBvbmVudHMuY2xvdWRmbGFyZS5tb2RlbF9hcnRpZmFjdJSME01vZGVsT2JqZWN0UHJvdmlkZXKUk5QpgZQu"
    ),
    "infra.components.cloudflare.logpush_challenge.ChallengeTokenProvider": (
        "gASVTwAAAAAAAACMLWluZnJhLmNvbXBvbmVudHMuY2xvdWRmbGFyZS5sb2dwdXNoX2NoYWxsZW5nZZSMFkNoYWxsZW5nZVRva2VuUHJvdmlkZXKUk5QpgZQu"
    ),
    "infra.components.cloudflare.rotation_window.RotationWindowProvider": (
        "gASVTQAAAAAAAACMK2luZnJhLmNvbXBvbmVudHMuY2xvdWRmbGFyZS5yb3RhdGlvbl93aW5kb3eUjBZSb3RhdGlvbldpbmRvd1Byb3ZpZGVylJOUKYGULg=="
    ),
}

LOAD = """
import base64, json, sys
import dill
loaded = {}
for path, blob in json.loads(sys.stdin.read()).items():
    try:
        provider = dill.loads(base64.b64decode(blob))
        loaded[path] = type(provider).__module__ + "." + type(provider).__qualname__
    except Exception as error:
        loaded[path] = f"{type(error).__name__}: {error}"
print(json.dumps(loaded))
"""


def current_providers() -> dict[str, type[ResourceProvider]]:
    """The dynamic provider classes the program's components define (bases such as DigestProvider left
    out), by import path."""
    classes = set()
    for info in pkgutil.walk_packages(infra.components.__path__, "infra.components."):
        module = import_module(info.name)
        classes |= {
            cls
            for cls in vars(module).values()
            if inspect.isclass(cls) and issubclass(cls, ResourceProvider) and cls.__module__ == info.name
        }
    bases = {base for cls in classes for base in cls.__mro__[1:]}
    return {f"{cls.__module__}.{cls.__qualname__}": cls for cls in classes - bases}


def load_in_fresh_interpreter(blobs: dict[str, str]) -> dict[str, str]:
    run = subprocess.run(
        [sys.executable, "-c", LOAD], cwd=REPO, input=json.dumps(blobs), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_every_recorded_provider_loads_as_the_class_the_program_uses_now():
    now = {cls.__qualname__: path for path, cls in current_providers().items()}
    gone = "a class the program no longer has"
    expected = {path: now.get(path.rsplit(".", 1)[1], gone) for path in RECORDED}
    assert load_in_fresh_interpreter(RECORDED) == expected


def test_a_moved_module_without_its_former_path_would_not_load(monkeypatch):
    # The check above can fail: without the alias the former path is a ModuleNotFoundError, as in the
    # dynamic provider's process.
    former = "infra.components.d1_schema.D1SchemaProvider"
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    script = "import infra.components as c; c.MOVED_MODULES.clear()\n" + LOAD
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        input=json.dumps({former: RECORDED[former]}),
        capture_output=True,
        text=True,
    )
    assert json.loads(run.stdout)[former].startswith("ModuleNotFoundError")


def test_every_provider_the_program_defines_is_recorded():
    # What a stack deployed from this tree will hold. A new or moved provider: add its line (printed here).
    providers = current_providers()
    unrecorded = {path: serialize_provider(cls()) for path, cls in providers.items() if path not in RECORDED}
    assert unrecorded == {}

"""tests/infra: the Pulumi mocks harness is the top-level package `pulumi_offline` (the offline plan runs
the program with it too); its names are imported here so tests keep using `tests.infra.conftest`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from pulumi_offline import (  # noqa: F401 (re-exported for the tests)
    PROJECT,
    TEST_ACCOUNT_ID,
    TEST_IDENTITY,
    TEST_SECRETS,
    TEST_ZONE_ID,
    PulumiRun,
    RecordedResource,
    plain,
    plaintext_leaks,
    run_pulumi,
    stack_config,
)


@pytest.fixture(scope="session")
def secret_values() -> list[str]:
    return list(TEST_SECRETS.values())


@pytest.fixture(scope="session")
def worker_bundle(tmp_path_factory):
    """wrangler's real build of edge/, once per session (about 3 s)."""
    from infra.worker_bundle import EDGE_DIR, build_worker_bundle

    if not (EDGE_DIR / "node_modules").is_dir():
        pytest.skip("edge/node_modules is missing: run `npm ci` in edge/ (make setup does)")
    return build_worker_bundle(tmp_path_factory.mktemp("worker-bundle"))


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """A small stand-in GGUF, so runs do not assemble and hash the 253 MB default model."""
    path = tmp_path_factory.mktemp("model") / "tiny-test-model.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    return path


@pytest.fixture(scope="session")
def run_program(worker_bundle, model_file):
    """`run_program(stack, overrides=None, without=(), wrangler=None)` runs infra.program.run() under the
    mocks (`wrangler`: a stand-in for edge/wrangler.jsonc)."""
    from infra import program

    def run(
        stack: str,
        overrides: dict[str, str] | None = None,
        without: Iterable[str] = (),
        wrangler: Mapping[str, Any] | None = None,
    ) -> PulumiRun:
        config = stack_config(stack, {f"{PROJECT}:modelFile": str(model_file), **(overrides or {})}, without)
        return run_pulumi(
            lambda: program.run(worker_bundle, wrangler), stack=stack, config=config, secret_keys=TEST_SECRETS
        )

    return run


@pytest.fixture(scope="session")
def dev_run(run_program) -> PulumiRun:
    return run_program("dev")


@pytest.fixture(scope="session")
def prod_run(run_program) -> PulumiRun:
    return run_program("prod")


@pytest.fixture(scope="session", params=["dev", "prod"])
def stack_run(request, dev_run, prod_run) -> PulumiRun:
    return {"dev": dev_run, "prod": prod_run}[request.param]


# The dev stack with every non-default Zero Trust choice: predefined DLP profiles, Gateway TLS decryption
# managed elsewhere, and the service-token secret rotated once.
ZERO_TRUST_CHOICES = {
    f"{PROJECT}:dlpProfile": "predefined",
    f"{PROJECT}:gatewayTlsDecryption": "external",
    f"{PROJECT}:serviceTokenSecretVersion": "2",
}


@pytest.fixture(scope="session")
def choices_run(run_program) -> PulumiRun:
    return run_program("dev", overrides=ZERO_TRUST_CHOICES)


# The batch pipeline's block of edge/wrangler.jsonc (issue 15), as the Worker declares it: the program is
# tested with it whether or not the Worker's code (and so the block) has landed in the real file yet.
BATCH_PIPELINE_BLOCK: dict[str, Any] = {
    "r2_buckets": [{"binding": "BATCH_FILES", "bucket_name": "steadytext-batch"}],
    "queues": {
        "producers": [{"binding": "BATCH_LINES", "queue": "steadytext-batch-lines"}],
        "consumers": [
            {
                "queue": "steadytext-batch-lines",
                "max_batch_size": 10,
                "max_batch_timeout": 5,
                "max_retries": 5,
                "retry_delay": 30,
                "dead_letter_queue": "steadytext-batch-dead-letters",
            },
            {"queue": "steadytext-batch-inbox"},
            # Lines that used up their retries are filed as failed by the Worker, so their batch can end.
            {"queue": "steadytext-batch-dead-letters"},
        ],
    },
    "workflows": [{"name": "steadytext-batch", "binding": "BATCH_WORKFLOW", "class_name": "BatchWorkflow"}],
}


def _merged(entries: list[dict], extra: list[dict], key: str) -> list[dict]:
    return list({entry[key]: entry for entry in [*entries, *extra]}.values())


def with_batch_pipeline(wrangler: Mapping[str, Any]) -> dict[str, Any]:
    """`wrangler` with the batch pipeline's block, in place of its entries of the same name."""
    block, queues = BATCH_PIPELINE_BLOCK, wrangler.get("queues", {})
    return {
        **wrangler,
        "r2_buckets": _merged(wrangler.get("r2_buckets", []), block["r2_buckets"], "binding"),
        "queues": {
            "producers": _merged(queues.get("producers", []), block["queues"]["producers"], "binding"),
            "consumers": _merged(queues.get("consumers", []), block["queues"]["consumers"], "queue"),
        },
        "workflows": _merged(wrangler.get("workflows", []), block["workflows"], "binding"),
    }


def without_batch_pipeline(wrangler: Mapping[str, Any]) -> dict[str, Any]:
    """`wrangler` without the batch pipeline's entries (as it was before the Worker's batch code)."""
    block = BATCH_PIPELINE_BLOCK
    bindings = {
        b["binding"] for b in [*block["r2_buckets"], *block["queues"]["producers"], *block["workflows"]]
    }
    consumed = {c["queue"] for c in block["queues"]["consumers"]}
    queues = wrangler.get("queues", {})
    return {
        **wrangler,
        "r2_buckets": [b for b in wrangler.get("r2_buckets", []) if b["binding"] not in bindings],
        "queues": {
            "producers": [p for p in queues.get("producers", []) if p["binding"] not in bindings],
            "consumers": [c for c in queues.get("consumers", []) if c["queue"] not in consumed],
        },
        "workflows": [w for w in wrangler.get("workflows", []) if w["binding"] not in bindings],
    }


@pytest.fixture(scope="session")
def batch_wrangler() -> dict[str, Any]:
    from infra.wrangler_config import load_wrangler_config

    return with_batch_pipeline(load_wrangler_config())


@pytest.fixture(scope="session")
def batch_dev_run(run_program, batch_wrangler) -> PulumiRun:
    return run_program("dev", wrangler=batch_wrangler)


@pytest.fixture(scope="session")
def batch_prod_run(run_program, batch_wrangler) -> PulumiRun:
    return run_program("prod", wrangler=batch_wrangler)


@pytest.fixture(scope="session", params=["dev", "prod"])
def batch_run(request, batch_dev_run, batch_prod_run) -> PulumiRun:
    return {"dev": batch_dev_run, "prod": batch_prod_run}[request.param]

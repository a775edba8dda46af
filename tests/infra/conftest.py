"""tests/infra: the Pulumi mocks harness is the top-level package `pulumi_offline` (the offline plan runs
the program with it too); its names are imported here so tests keep using `tests.infra.conftest`.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    """`run_program(stack, overrides=None, without=())` runs infra.program.run() under the mocks."""
    from infra import program

    def run(stack: str, overrides: dict[str, str] | None = None, without: Iterable[str] = ()) -> PulumiRun:
        config = stack_config(stack, {f"{PROJECT}:modelFile": str(model_file), **(overrides or {})}, without)
        return run_pulumi(
            lambda: program.run(worker_bundle), stack=stack, config=config, secret_keys=TEST_SECRETS
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

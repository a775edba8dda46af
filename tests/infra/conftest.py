"""tests/infra: the Pulumi mocks harness lives in `infra.mocks` (the offline plan runs the program with it
too); its names are imported here so tests keep using `tests.infra.conftest`.
"""

from __future__ import annotations

import pytest

from infra.mocks import (  # noqa: F401 (re-exported for the tests)
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

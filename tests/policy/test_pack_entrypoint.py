"""The pack's entry point, as the Pulumi CLI starts it, builds the pack and serves the analyzer protocol."""

import subprocess
import sys

from infra import REPO_ROOT
from infra.policy.pack import POLICIES


def test_policy_names_are_unique():
    names = [policy.name for policy in POLICIES]
    assert len(names) == len(set(names))


def test_the_pack_starts_and_announces_its_grpc_port():
    # The CLI runs __main__.py in the pack's folder and reads the port from the first line of stdout.
    pack = subprocess.Popen(
        [sys.executable, "__main__.py"],
        cwd=REPO_ROOT / "infra" / "policy",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = pack.stdout.readline().strip()
        assert first_line.isdigit() and 0 < int(first_line) < 65536, (
            pack.stderr.read() if pack.poll() else first_line
        )
        assert pack.poll() is None  # still serving
    finally:
        pack.terminate()
        pack.wait(timeout=30)

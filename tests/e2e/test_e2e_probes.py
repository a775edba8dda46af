"""The determinism self-check through the real stack: the runtime decoded its golden probes before it
became ready and reports their digest; the Worker (workerd) learnt it from GET /v1/status and pinned it,
with the model sha256, for the fingerprint its answers are cached under."""

from __future__ import annotations

import pytest

from runtime.engine.probes import probes_path, read_probe_file

pytestmark = pytest.mark.e2e


def test_the_worker_pins_the_runtimes_probe_digest_for_its_fingerprint(stack, worker, runtime, unique_prompt):
    status = runtime.get("/v1/status").json()
    probes = status["probes"]
    _, goldens = read_probe_file(probes_path(None))
    assert probes["status"] == ("passed" if probes["golden_key"] in goldens else "unrecorded")
    assert len(probes["digest"]) == 64

    answer = worker.post("/v1/generate", json={"prompt": unique_prompt("pinned digests"), "max_tokens": 2})
    assert answer.status_code == 200 and answer.headers["x-cache"] == "MISS", answer.text
    rows = stack.d1_query(
        f"SELECT model_sha256, probe_digest FROM origin_builds WHERE fingerprint = '{status['fingerprint']}'"
    )
    assert rows == [{"model_sha256": status["model"]["sha256"], "probe_digest": probes["digest"]}]

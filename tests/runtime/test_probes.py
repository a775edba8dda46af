"""The start-up determinism self-check: golden probes decoded before /readyz, compared per model sha256,
backend and kernel build; their digest on /v1/status; the GPU in the fingerprint."""

import json
import os
import shutil
import stat
import time
from pathlib import Path

import httpx
import pytest

from runtime.engine.fingerprint import compute_fingerprint, gpu_description
from runtime.engine.probes import answers_digest, golden_key, probes_path, read_probe_file, write_goldens
from tests.runtime.conftest import runtime_settings, serve, wait_ready

COMMITTED = probes_path(None)


def _key(loaded_models) -> str:
    return golden_key(loaded_models.model.sha256, loaded_models.fingerprint)


def _probes_file(tmp_path: Path, goldens: dict[str, dict[str, str]]) -> Path:
    """The committed probes with other goldens."""
    data = json.loads(COMMITTED.read_text(encoding="utf-8"))
    data["goldens"] = goldens
    path = tmp_path / "probes.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _wait_until_loaded(url: str) -> httpx.Response:
    """/readyz once loading is over (the 'still loading' answer is the only one that changes)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready = httpx.get(f"{url}/readyz")
        if ready.status_code == 200 or ready.json()["error"]["type"] != "not_ready":
            return ready
        time.sleep(0.05)
    raise AssertionError("the runtime never finished loading")


def test_the_committed_goldens_hold_on_this_machine_and_the_digest_is_on_status(client, loaded_models):
    _, goldens = read_probe_file(COMMITTED)
    probes = client.get("/v1/status").json()["probes"]
    # Recorded here: every answer must match (or the session's runtime would not be ready at all). A
    # machine with another CPU feature set has its own key and, until someone records it, none.
    assert probes["status"] == ("passed" if _key(loaded_models) in goldens else "unrecorded")
    assert probes["golden_key"] == _key(loaded_models)
    assert probes["policy"] == "check" and probes["count"] == 5
    assert probes["digest"] == answers_digest(loaded_models.probe_answers)
    assert len(probes["digest"]) == 64


def test_the_probe_digest_covers_every_answer(loaded_models):
    answers = dict(loaded_models.probe_answers)
    digest = answers_digest(answers)
    for name in answers:
        assert answers_digest({**answers, name: answers[name] + " "}) != digest
    assert answers["embedding"].startswith("sha256:")


def test_a_tampered_golden_keeps_readyz_503_naming_the_probe(app_factory, loaded_models, tmp_path):
    tampered = {**loaded_models.probe_answers, "colours": " green, purple and orange."}
    path = _probes_file(tmp_path, {_key(loaded_models): tampered})
    with serve(app_factory(probes_file=str(path))) as url:
        ready = _wait_until_loaded(url)
        assert ready.status_code == 503
        error = ready.json()["error"]
        assert error["type"] == "probe_check_failed"
        assert "'colours'" in error["message"] and "green, purple and orange" in error["message"]
        assert _key(loaded_models) in error["message"]
        # Nothing is served by a runtime that does not reproduce its goldens, status and inference alike.
        refused = httpx.post(f"{url}/v1/generate", json={"prompt": "hi", "max_tokens": 2})
        assert refused.status_code == 503 and refused.json()["error"]["type"] == "probe_check_failed"
        assert httpx.get(f"{url}/v1/status").status_code == 503
        assert "runtime_ready 0.0" in httpx.get(f"{url}/metrics").text
        assert httpx.get(f"{url}/healthz").status_code == 200  # alive: a restart would decode the same


def test_a_probe_without_a_recorded_answer_is_a_mismatch(app_factory, loaded_models, tmp_path):
    partial = {name: answer for name, answer in loaded_models.probe_answers.items() if name != "code"}
    with serve(app_factory(probes_file=str(_probes_file(tmp_path, {_key(loaded_models): partial})))) as url:
        error = _wait_until_loaded(url).json()["error"]
        assert error["type"] == "probe_check_failed" and "'code' has no answer recorded" in error["message"]


def test_goldens_of_another_build_do_not_apply(app_factory, loaded_models, tmp_path):
    """`check` (the default) is ready without goldens for this key; `require` is not."""
    other = {f"{loaded_models.model.sha256}/cuda/000000000000": {"capital": "elsewhere"}}
    path = str(_probes_file(tmp_path, other))
    with serve(app_factory(probes_file=path)) as url:
        wait_ready(url)
        probes = httpx.get(f"{url}/v1/status").json()["probes"]
        assert probes["status"] == "unrecorded"
        assert probes["digest"] == answers_digest(loaded_models.probe_answers)
    with serve(app_factory(probes_file=path, probes="require")) as url:
        error = _wait_until_loaded(url).json()["error"]
        assert (
            error["type"] == "probe_check_failed"
            and "no golden probe answers are recorded" in error["message"]
        )


def test_probes_off_reports_no_digest(app_factory, loaded_models, tmp_path):
    tampered = {name: "tampered" for name in loaded_models.probe_answers}
    path = str(_probes_file(tmp_path, {_key(loaded_models): tampered}))
    with serve(app_factory(probes_file=path, probes="off")) as url:
        wait_ready(url)
        probes = httpx.get(f"{url}/v1/status").json()["probes"]
        assert probes["status"] == "off" and probes["digest"] is None


def test_record_writes_this_builds_answers_and_keeps_other_keys(tmp_path, loaded_models):
    path = _probes_file(tmp_path, {"other/cpu/000000000000": {"capital": "kept"}})
    write_goldens(path, _key(loaded_models), loaded_models.probe_answers)
    _, goldens = read_probe_file(path)
    assert goldens == {
        "other/cpu/000000000000": {"capital": "kept"},
        _key(loaded_models): loaded_models.probe_answers,
    }


def test_the_golden_key_follows_the_kernel_build(loaded_models):
    fingerprint = loaded_models.fingerprint
    other_cpu = type(fingerprint)(
        fingerprint.value, "cpu", {**fingerprint.versions, "llama_cpp_system": "CPU : NEON = 1 | "}
    )
    assert golden_key("abc", other_cpu) != golden_key("abc", fingerprint)
    assert golden_key("abc", fingerprint).startswith("abc/cpu/")


@pytest.fixture()
def fake_nvidia_smi(tmp_path, monkeypatch):
    script = tmp_path / "nvidia-smi"
    script.write_text(
        '#!/bin/sh\necho "NVIDIA H100 80GB HBM3, 550.90.07"\necho "NVIDIA H100 80GB HBM3, 550.90.07"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return script


def test_the_gpu_model_and_driver_are_read_from_nvidia_smi(fake_nvidia_smi):
    assert (
        gpu_description()
        == "NVIDIA H100 80GB HBM3 (driver 550.90.07); NVIDIA H100 80GB HBM3 (driver 550.90.07)"
    )


def test_the_gpu_joins_the_fingerprint_on_a_gpu_only(fake_nvidia_smi, loaded_models, monkeypatch):
    settings = runtime_settings()
    cpu = compute_fingerprint(loaded_models.model, settings)
    assert "gpu" not in cpu.versions and cpu.value == loaded_models.fingerprint.value
    monkeypatch.setattr("runtime.engine.fingerprint.detect_backend", lambda layers: "cuda")
    on_h100 = compute_fingerprint(loaded_models.model, settings)
    assert (
        on_h100.versions["gpu"]
        == "NVIDIA H100 80GB HBM3 (driver 550.90.07); NVIDIA H100 80GB HBM3 (driver 550.90.07)"
    )
    fake_nvidia_smi.write_text('#!/bin/sh\necho "NVIDIA H100 80GB HBM3, 560.35.03"\n')
    assert compute_fingerprint(loaded_models.model, settings).value != on_h100.value


def test_without_nvidia_smi_the_gpu_is_unknown(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert gpu_description() == "unknown"

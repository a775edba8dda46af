"""The container: Dockerfiles pass hadolint, the entrypoint's logic runs outside Docker with a fake python."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.harness import free_port

CONTAINER = Path(__file__).resolve().parents[2] / "container"
DOCKERFILES = sorted(CONTAINER.glob("Dockerfile*"))


def test_both_variants_exist():
    assert [path.name for path in DOCKERFILES] == ["Dockerfile.cpu", "Dockerfile.cuda"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_passes(dockerfile):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_essentials(dockerfile):
    text = dockerfile.read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2  # multi-stage
    assert "\nUSER 10001:10001" in text
    assert "HEALTHCHECK" in text and "runtime-healthcheck.py" in text
    assert "ARG BAKE_MODEL=false" in text


def test_cuda_variant_builds_on_devel_and_runs_on_runtime():
    text = (CONTAINER / "Dockerfile.cuda").read_text()
    assert "-devel-ubuntu" in text and "-runtime-ubuntu" in text
    assert "-DGGML_CUDA=on" in text and "RUNTIME_N_GPU_LAYERS=-1" in text


@pytest.fixture()
def fake_python(tmp_path):
    """A `python` that records its arguments and the RUNTIME_* environment instead of starting anything."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record"
    script = bin_dir / "python"
    script.write_text(f'#!/bin/sh\necho "ARGS $*" > {record}\nenv | grep ^RUNTIME_ | sort >> {record}\n')
    script.chmod(0o755)
    return bin_dir, record


def run_entrypoint(fake_python, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, str]:
    bin_dir, record = fake_python
    clean = {"PATH": f"{bin_dir}:/usr/bin:/bin", **env}
    result = subprocess.run(
        ["sh", str(CONTAINER / "entrypoint.sh"), *args],
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )
    return result, record.read_text() if record.exists() else ""


def test_entrypoint_defaults_to_all_interfaces_and_execs_the_runtime(fake_python):
    result, record = run_entrypoint(fake_python)
    assert result.returncode == 0, result.stderr
    assert record.splitlines()[0] == "ARGS -m runtime --host 0.0.0.0 --port 8000"
    assert "RUNTIME_HOST=0.0.0.0" in record and "RUNTIME_PORT=8000" in record
    assert "RUNTIME_EMF_INTERVAL_SECONDS=10" in record  # load reports for the auto scaling


def test_entrypoint_keeps_load_reports_off_when_asked(fake_python):
    result, record = run_entrypoint(fake_python, RUNTIME_EMF_INTERVAL_SECONDS="0")
    assert result.returncode == 0, result.stderr
    assert "RUNTIME_EMF_INTERVAL_SECONDS=0" in record


def test_entrypoint_passes_settings_and_extra_flags_through(fake_python):
    result, record = run_entrypoint(
        fake_python,
        "--n-ctx",
        "4096",
        RUNTIME_PORT="9000",
        RUNTIME_N_GPU_LAYERS="-1",
        RUNTIME_MODEL_URL="s3://models/m.gguf",
        RUNTIME_MODEL_SHA256="a" * 64,
        AWS_ACCESS_KEY_ID="id",
        AWS_SECRET_ACCESS_KEY="secret",
    )
    assert result.returncode == 0, result.stderr
    assert record.splitlines()[0] == "ARGS -m runtime --host 0.0.0.0 --port 9000 --n-ctx 4096"
    assert "RUNTIME_N_GPU_LAYERS=-1" in record and "RUNTIME_MODEL_URL=s3://models/m.gguf" in record
    assert "secret" not in result.stderr + result.stdout


def test_entrypoint_refuses_a_model_url_without_digest(fake_python):
    result, record = run_entrypoint(fake_python, RUNTIME_MODEL_URL="s3://models/m.gguf")
    assert result.returncode == 64 and record == ""
    assert "RUNTIME_MODEL_SHA256" in result.stderr


def test_entrypoint_refuses_a_non_s3_url(fake_python):
    result, _ = run_entrypoint(
        fake_python, RUNTIME_MODEL_URL="https://x/m.gguf", RUNTIME_MODEL_SHA256="a" * 64
    )
    assert result.returncode == 64 and "s3://bucket/key" in result.stderr


def test_entrypoint_warns_when_falling_back_to_the_task_role(fake_python):
    result, _ = run_entrypoint(
        fake_python, RUNTIME_MODEL_URL="s3://models/m.gguf", RUNTIME_MODEL_SHA256="a" * 64
    )
    assert result.returncode == 0 and "task role" in result.stderr


def test_entrypoint_runs_another_command_when_given_one(fake_python, tmp_path):
    result, record = run_entrypoint(fake_python, "sh", "-c", "echo other-command")
    assert result.stdout.strip() == "other-command" and record == ""


def run_healthcheck(port: int) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "RUNTIME_PORT": str(port)}
    return subprocess.run(
        [sys.executable, str(CONTAINER / "healthcheck.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_healthcheck_passes_on_a_ready_runtime_and_fails_without_one(base_url):
    assert run_healthcheck(int(base_url.rsplit(":", 1)[1])).returncode == 0
    down = run_healthcheck(free_port())
    assert down.returncode == 1 and "/readyz" in down.stderr

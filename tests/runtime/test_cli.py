"""`python -m runtime` as a process: refuses bad settings and bad models, serves the bundled model."""

import hashlib
import os
import subprocess
import sys

import httpx

from scripts.harness import Service, free_port


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_invalid_setting_exits_2_naming_the_variable():
    result = run_cli("--port", "0")
    assert result.returncode == 2
    assert "RUNTIME_PORT" in result.stderr and "Traceback" not in result.stderr


def test_sha_mismatch_refuses_to_start_naming_both_digests(tmp_path):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"not the model you expected")
    expected = "1" * 64
    result = run_cli("--model-path", str(model), "--model-sha256", expected, "--port", str(free_port()))
    assert result.returncode == 1
    assert expected in result.stderr
    assert hashlib.sha256(model.read_bytes()).hexdigest() in result.stderr
    assert "Traceback" not in result.stderr


def test_serves_the_bundled_model_on_the_given_port(tmp_path):
    port = free_port()
    service = Service(
        "runtime",
        [sys.executable, "-m", "runtime", "--host", "127.0.0.1", "--port", str(port), "--n-ctx", "512"],
        log_path=tmp_path / "runtime.log",
    )
    service.start()
    try:
        service.wait_ready(f"http://127.0.0.1:{port}/readyz", timeout_s=120)
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/generate", json={"prompt": "Hi", "max_tokens": 3})
        assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] <= 3
    finally:
        service.stop()


def test_prefetch_prints_the_verified_path_or_refuses(tmp_path):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()

    def prefetch(sha256: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "RUNTIME_MODEL_PATH": str(model), "RUNTIME_MODEL_SHA256": sha256}
        return subprocess.run(
            [sys.executable, "-m", "runtime.prefetch"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    good = prefetch(digest)
    assert good.returncode == 0 and good.stdout.strip() == str(model)
    bad = prefetch("2" * 64)
    assert bad.returncode == 1 and digest in bad.stderr and "2" * 64 in bad.stderr


def test_every_setting_but_the_secret_is_a_flag_with_its_description_as_help():
    from runtime.__main__ import parse_overrides, settings_flags
    from runtime.config.settings import RuntimeSettings

    fields = RuntimeSettings.model_fields
    assert set(settings_flags().values()) == set(fields) - {"auth_token"}
    help_text = run_cli("--help").stdout
    for flag, name in settings_flags().items():
        assert flag in help_text
        assert fields[name].description.split()[0] in help_text
    assert "--auth-token" not in help_text
    # A flag goes through the same parsing as its environment variable.
    overrides = parse_overrides(
        ["--max-tokens-cap", "256", "--queue-size-per-tenant", "3", "--s3-endpoint-url", "x"]
    )
    settings = RuntimeSettings(_env_file=None, **overrides)
    assert (settings.max_tokens_cap, settings.queue_size_per_tenant, settings.s3_endpoint_url) == (
        256,
        3,
        "x",
    )


def test_every_setting_has_a_description():
    from runtime.config.settings import RuntimeSettings

    undescribed = [name for name, field in RuntimeSettings.model_fields.items() if not field.description]
    assert undescribed == []

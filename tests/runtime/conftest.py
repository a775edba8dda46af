"""Runtime fixtures: the real default model loaded once per session, real uvicorn servers on loopback."""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from runtime.config.model_source import resolve_model
from runtime.config.settings import RuntimeSettings
from runtime.engine.models import LoadedModels, load_models
from runtime.http.app import create_app

# Small context and caps keep the suite quick on 2 cores; the defaults are exercised by the CLI test.
TEST_SETTINGS = {"n_ctx": 1024, "max_tokens_cap": 256, "default_max_tokens": 16}


def runtime_settings(**overrides: object) -> RuntimeSettings:
    # Explicit values win over RUNTIME_* variables of whoever runs the suite.
    return RuntimeSettings(_env_file=None, **{**TEST_SETTINGS, **overrides})


@pytest.fixture(scope="session")
def loaded_models() -> LoadedModels:
    settings = runtime_settings()
    return load_models(resolve_model(settings), settings)


@contextmanager
def serve(app) -> Iterator[str]:
    """Run `app` under a real uvicorn server on a free loopback port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def wait_ready(base_url: str, timeout_s: float = 60, headers: dict | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(f"{base_url}/readyz", headers=headers).status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"{base_url} never became ready")


@pytest.fixture(scope="session")
def app_factory(loaded_models: LoadedModels) -> Callable:
    """Apps over the session's models; `loader` replaces the instant loader (e.g. to delay readiness)."""

    def make(loader: Callable[[], LoadedModels] | None = None, **overrides: object):
        return create_app(runtime_settings(**overrides), loader or (lambda: loaded_models))

    return make


@pytest.fixture(scope="session")
def base_url(app_factory) -> Iterator[str]:
    with serve(app_factory()) as url:
        wait_ready(url)
        yield url


@pytest.fixture()
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=120) as http:
        yield http


def metric_value(text: str, name: str, labels: str = "") -> float:
    """One sample from Prometheus text: metric_value(text, "runtime_inferences_total", 'kind="embed"')."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{wanted} not in metrics")

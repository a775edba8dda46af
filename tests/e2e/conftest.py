"""One real runtime process and one real `wrangler dev` (workerd) per session, on free loopback ports.

Each session gets a fresh state folder, so runs are independent of each other and of `make dev`'s `.local/`.
Tests that stop the runtime restart it before they finish; every test uses prompts of its own so that
cache state never leaks between tests.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from scripts.harness import free_port
from scripts.load import local_client
from scripts.local_stack import LocalStack, LocalStackConfig

INFERENCES_METRIC = re.compile(r'^runtime_inferences_total\{kind="(\w+)"\} ([0-9.e+]+)$', re.MULTILINE)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local_stack = LocalStack(
        LocalStackConfig(
            state_dir=tmp_path_factory.mktemp("stack"),
            runtime_port=free_port(),
            worker_port=free_port(),
            inspector_port=free_port(),
            frozen_worker=True,
        )
    )
    try:
        local_stack.start()
        yield local_stack
    finally:
        local_stack.stop()


@pytest.fixture(scope="session")
def api_key(stack: LocalStack) -> str:
    return stack.create_api_key("e2e")


@pytest.fixture(scope="session")
def worker(stack: LocalStack, api_key: str) -> Iterator[httpx.Client]:
    """A client of the Worker carrying a valid API key."""
    with local_client(stack.worker_url, api_key) as client:
        yield client


@pytest.fixture(scope="session")
def runtime(stack: LocalStack) -> Iterator[httpx.Client]:
    """A client of the runtime itself, with the bearer token the Worker uses."""
    with local_client(stack.runtime_url, stack.secrets["ORIGIN_TOKEN"]) as client:
        yield client


def digit_free_token() -> str:
    """A random token without digits: hex digits can line up into a number DLP rightly refuses."""
    return uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))


@pytest.fixture(scope="session")
def unique_prompt() -> Callable[[str], str]:
    """Prompts no other test (or earlier run) has sent, so the first request for one is a cache miss."""

    def make(topic: str) -> str:
        return f"In one short sentence, say something about {topic}. ({digit_free_token()})"

    return make


@pytest.fixture(scope="session")
def inference_count(runtime: httpx.Client) -> Callable[[str], float]:
    """`runtime_inferences_total{kind}` from the runtime's own /metrics: real engine runs, not requests."""

    def read(kind: str) -> float:
        response = runtime.get("/metrics")
        response.raise_for_status()
        counts = {name: float(value) for name, value in INFERENCES_METRIC.findall(response.text)}
        return counts.get(kind, 0.0)

    return read

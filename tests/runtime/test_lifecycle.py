"""Readiness, the bounded queue, client disconnects, bearer auth and metrics, each on its own app."""

import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.runtime.conftest import metric_value, serve, wait_ready


def test_not_ready_until_the_models_load(app_factory, loaded_models):
    release = threading.Event()

    def slow_loader():
        release.wait(30)
        return loaded_models

    with serve(app_factory(loader=slow_loader)) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503 and ready.json()["error"]["type"] == "not_ready"
        early = httpx.post(f"{url}/v1/generate", json={"prompt": "hi"})
        assert early.status_code == 503 and int(early.headers["Retry-After"]) > 0
        assert "runtime_ready 0.0" in httpx.get(f"{url}/metrics").text
        release.set()
        wait_ready(url)
        assert httpx.post(f"{url}/v1/generate", json={"prompt": "hi", "max_tokens": 2}).status_code == 200
        assert "runtime_ready 1.0" in httpx.get(f"{url}/metrics").text


def test_a_failed_load_fails_liveness_with_the_reason(app_factory):
    def broken_loader():
        raise ValueError("model file is not a GGUF")

    with serve(app_factory(loader=broken_loader)) as url:
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/healthz").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        health = httpx.get(f"{url}/healthz")
        assert health.status_code == 503 and "not a GGUF" in health.json()["error"]
        assert httpx.get(f"{url}/readyz").json()["error"]["type"] == "load_failed"


LONG = {"prompt": "Count from 1 to 500: 1, 2, 3,", "max_tokens": 200, "stream": True}


def _first_token(stream: httpx.Response) -> Iterator[str]:
    """Read up to the first token; return the line iterator, whose closing would close the connection."""
    lines = stream.iter_lines()
    for line in lines:
        if line.startswith("data: "):
            return lines
    raise AssertionError("the stream ended before its first token")


def _wait_for_queue_depth(url: str, depth: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = httpx.get(f"{url}/metrics").text
        if metric_value(text, "runtime_queue_depth", 'model="generate"') == depth:
            return
        time.sleep(0.02)
    raise AssertionError(f"queue depth never reached {depth}")


def test_full_queue_answers_429_and_a_disconnect_frees_the_model(app_factory):
    # One decode slot: the queue fills as soon as one request runs.
    with (
        serve(app_factory(queue_size=1, decode_slots=1)) as url,
        httpx.Client(base_url=url, timeout=120) as http,
    ):
        wait_ready(url)
        queued_result: dict = {}

        def queued_request() -> None:
            queued_result["response"] = httpx.post(
                f"{url}/v1/generate", json={"prompt": "Hello", "max_tokens": 4}, timeout=120
            )

        with http.stream("POST", "/v1/generate", json=LONG) as blocker:
            open_lines = _first_token(blocker)  # the long generation holds the model now
            waiter = threading.Thread(target=queued_request)
            waiter.start()
            _wait_for_queue_depth(url, 1)
            refused = http.post("/v1/generate", json={"prompt": "one too many", "max_tokens": 4})
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.json()["error"]["type"] == "queue_full"
            assert queued_result == {}  # still waiting behind the blocker
            open_lines.close()
        # Closing the line iterator closed the connection mid-stream.
        waiter.join(timeout=60)
        assert queued_result["response"].status_code == 200
        metrics = http.get("/metrics").text
        assert metric_value(metrics, "runtime_cancelled_total", 'kind="generate"') == 1
        assert metric_value(metrics, "runtime_queue_rejections_total", 'model="generate"') == 1
        # The abandoned generation stopped well short of its 200 tokens.
        assert metric_value(metrics, "runtime_generated_tokens_total") < 200


def test_a_client_that_gives_up_on_a_plain_request_frees_the_model(app_factory):
    with serve(app_factory()) as url, httpx.Client(base_url=url, timeout=120) as http:
        wait_ready(url)
        with pytest.raises(httpx.ReadTimeout):  # like the edge's origin timeout
            httpx.post(f"{url}/v1/generate", json={**LONG, "stream": False}, timeout=1.0)
        assert http.post("/v1/generate", json={"prompt": "Hello", "max_tokens": 4}).status_code == 200
        metrics = http.get("/metrics").text
    assert metric_value(metrics, "runtime_cancelled_total", 'kind="generate"') == 1
    assert metric_value(metrics, "runtime_generated_tokens_total") < 200
    labels = 'method="POST",route="/v1/generate",status="499"'
    assert metric_value(metrics, "runtime_requests_total", labels) == 1


@pytest.fixture(scope="module")
def guarded_url(app_factory):
    with serve(app_factory(auth_token="s3cret-token")) as url:
        wait_ready(url, headers={"Authorization": "Bearer s3cret-token"})
        yield url


@pytest.mark.parametrize("route", ["/v1/status", "/metrics", "/v1/models", "/nope"])
@pytest.mark.parametrize("header", [None, "Bearer wrong", "s3cret-token", "Bearer s3cret-token2"])
def test_bearer_token_required(guarded_url, route, header):
    headers = {"Authorization": header} if header else {}
    response = httpx.get(f"{guarded_url}{route}", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_bearer_token_accepted_and_health_stays_open(guarded_url):
    good = {"Authorization": "Bearer s3cret-token"}
    assert httpx.get(f"{guarded_url}/v1/status", headers=good).status_code == 200
    assert (
        httpx.post(
            f"{guarded_url}/v1/generate", json={"prompt": "hi", "max_tokens": 2}, headers=good
        ).status_code
        == 200
    )
    assert httpx.get(f"{guarded_url}/healthz").status_code == 200
    assert httpx.get(f"{guarded_url}/readyz").status_code == 200


def test_metrics_count_engine_runs_requests_and_tokens(app_factory):
    with serve(app_factory()) as url, httpx.Client(base_url=url, timeout=120) as http:
        wait_ready(url)
        http.post("/v1/generate", json={"prompt": "Count: 1, 2,", "max_tokens": 3})
        http.post("/v1/generate", json={"prompt": "Count: 1, 2,", "max_tokens": 3, "stream": True})
        http.post("/v1/embed", json={"input": ["a", "b"]})
        http.post("/v1/generate", json={"prompt": ""})
        text = http.get("/metrics").text
    assert metric_value(text, "runtime_inferences_total", 'kind="generate"') == 2
    assert metric_value(text, "runtime_inferences_total", 'kind="embed"') == 1
    assert metric_value(text, "runtime_generated_tokens_total") == 6
    assert (
        metric_value(text, "runtime_requests_total", 'method="POST",route="/v1/generate",status="200"') == 2
    )
    assert (
        metric_value(text, "runtime_requests_total", 'method="POST",route="/v1/generate",status="400"') == 1
    )
    assert metric_value(text, "runtime_model_load_seconds", 'model="generate"') >= 0
    assert "runtime_request_duration_seconds_bucket" in text
    assert "runtime_inference_duration_seconds_count" in text


def test_status_describes_the_runtime(client):
    status = client.get("/v1/status").json()
    assert status["model"]["sha256"] == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert status["model"]["embedding_dim"] == 640 and status["model"]["n_ctx"] == 1024
    assert status["backend"] == "cpu"
    assert status["versions"]["llama_cpp_python"] == "0.3.36"
    assert status["defaults"] == {"seed": 42, "max_tokens": 16, "max_tokens_cap": 256, "max_choices": 4}


def test_metric_labels_stay_bounded_whatever_clients_send(app_factory):
    odd_methods = ["FOO", "PROPFIND", "PURGE", "X-" + "A" * 40, "BREW"]
    odd_paths = ["/nope", "/v1/generate/extra", "/%2e%2e/etc/passwd", "/v1/" + "z" * 200, "/metrics/../v1"]
    with serve(app_factory()) as url, httpx.Client(base_url=url, timeout=120) as http:
        wait_ready(url)
        for method in odd_methods:
            for path in ["/v1/generate", "/metrics", *odd_paths]:
                assert http.request(method, path).status_code in (404, 405)
        for path in odd_paths:
            assert http.get(path).status_code == 404
            assert http.post(path, json={"prompt": "hi"}).status_code == 404
        text = http.get("/metrics").text
    series = [line for line in text.splitlines() if line.startswith("runtime_requests_total{")]
    labels = [dict(re.findall(r'(\w+)="([^"]*)"', line)) for line in series]
    assert {label["method"] for label in labels} == {"other", "GET", "POST"}
    assert {label["route"] for label in labels} == {"unmatched", "/v1/generate", "/metrics", "/readyz"}
    # All odd methods on one route and status share one series.
    other_on_generate = 'method="other",route="/v1/generate",status="405"'
    assert metric_value(text, "runtime_requests_total", other_on_generate) == len(odd_methods)
    histograms = {
        match
        for line in text.splitlines()
        for match in re.findall(r'^runtime_request_duration_seconds_count\{route="([^"]*)"', line)
    }
    assert histograms == {"unmatched", "/v1/generate", "/metrics", "/readyz"}

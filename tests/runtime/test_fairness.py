"""Fair queueing through the real runtime: one tenant's flood fills only its share, another tenant is
admitted and served at the next turn (X-Steadytext-Tenant names the tenant; absent = `default`)."""

import threading
import time
from collections.abc import Callable

import httpx

from runtime.http.tenant import HEADER
from tests.runtime.conftest import metric_value, serve, wait_ready

LONG = {"prompt": "Count from 1 to 500: 1, 2, 3,", "max_tokens": 200, "stream": True}
SHORT = {"prompt": "Name a colour:", "max_tokens": 8}


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"never saw {what}")


def _queue_depth(url: str) -> float:
    return metric_value(httpx.get(f"{url}/metrics").text, "runtime_queue_depth", 'model="generate"')


def test_a_flooding_tenant_cannot_starve_another(app_factory):
    # Defaults: a queue of 16, of which one tenant may fill 8.
    # One decode slot, so the blocker holds the model and the order of the queue is what is seen.
    with serve(app_factory(decode_slots=1)) as url, httpx.Client(base_url=url, timeout=120) as http:
        wait_ready(url)
        assert http.get("/v1/status").json()["queue_size_per_tenant"] == 8
        finished: list[str] = []
        refusals: list[httpx.Response] = []
        lock = threading.Lock()

        def send(tenant: str, label: str) -> None:
            response = httpx.post(f"{url}/v1/generate", json=SHORT, headers={HEADER: tenant}, timeout=120)
            with lock:
                if response.status_code == 200:
                    finished.append(label)
                else:
                    refusals.append(response)

        with http.stream("POST", "/v1/generate", json=LONG, headers={HEADER: "someone-else"}) as blocker:
            lines = blocker.iter_lines()
            next(line for line in lines if line.startswith("data: "))  # the model is busy from here on
            flood = [threading.Thread(target=send, args=("tenant-a", f"a{n}")) for n in range(24)]
            for thread in flood:
                thread.start()
            _wait_for(lambda: len(refusals) == 16 and _queue_depth(url) == 8, "the flood's refusals")
            # 8 of tenant A's requests wait; the other 16 were refused, with their own backlog's wait.
            assert len(refusals) == 16 and finished == []
            for refused in refusals:
                assert refused.json()["error"]["type"] == "queue_full"
                assert "RUNTIME_QUEUE_SIZE_PER_TENANT" in refused.json()["error"]["message"]
                # Nine jobs would run before a ninth request of A's (its eight, then itself), at the
                # starting estimate of one second each.
                assert refused.headers["Retry-After"] == "9"
            other = threading.Thread(target=send, args=("tenant-b", "b"))
            other.start()
            _wait_for(lambda: _queue_depth(url) == 9, "tenant B queued")
            lines.close()  # the blocker hangs up; its generation is abandoned
        other.join(timeout=120)
        for thread in flood:
            thread.join(timeout=120)
    # A's first waiting request had the same turn as B's and came first; then B, then A's backlog.
    assert len(finished) == 9 and finished.index("b") == 1, finished


def test_requests_without_a_tenant_share_the_default_tenant(app_factory):
    app = app_factory(queue_size=4, decode_slots=1)  # the blocker holds the only slot
    with serve(app) as url, httpx.Client(base_url=url, timeout=120) as http:
        wait_ready(url)
        results: list[int] = []

        def send(headers: dict) -> None:
            response = httpx.post(f"{url}/v1/generate", json=SHORT, headers=headers, timeout=120)
            results.append(response.status_code)

        with http.stream("POST", "/v1/generate", json=LONG) as blocker:
            lines = blocker.iter_lines()
            next(line for line in lines if line.startswith("data: "))
            waiting = [threading.Thread(target=send, args=({},)) for _ in range(2)]
            for thread in waiting:
                thread.start()
            _wait_for(lambda: _queue_depth(url) == 2, "two waiting")
            # Half of the queue is the default tenant's share: a third request without the header, or
            # with an empty one, is refused; a named tenant still gets in.
            assert http.post("/v1/generate", json=SHORT).status_code == 429
            assert http.post("/v1/generate", json=SHORT, headers={HEADER: ""}).status_code == 429
            named = threading.Thread(target=send, args=({HEADER: "key_123"},))
            named.start()
            _wait_for(lambda: _queue_depth(url) == 3, "the named tenant queued")
            lines.close()
        for thread in [*waiting, named]:
            thread.join(timeout=120)
    assert results == [200, 200, 200]


def test_a_malformed_tenant_header_is_a_400(client):
    for value in ["has space", "x" * 129, "caf\u00e9"]:
        response = client.post("/v1/generate", json=SHORT, headers={HEADER: value.encode("utf-8")})
        assert response.status_code == 400, value
        assert response.json()["error"]["field"] == HEADER

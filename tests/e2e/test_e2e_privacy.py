"""Privacy at rest through the real stack (docs/data-retention.md): after answered, cached, streamed and
refused requests, the prompt text is nowhere in the local D1, KV or Durable Object storage, nor in the
Worker's or the runtime's logs. Only answers are kept; the cache key is a hash."""

import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROW_SETTLE_TIMEOUT_S = 30


def files_holding(folder: Path, needle: bytes) -> list[str]:
    return [str(path) for path in folder.rglob("*") if path.is_file() and needle in path.read_bytes()]


def test_no_prompt_text_at_rest_in_d1_kv_durable_objects_or_logs(stack, worker):
    # max_tokens 1: the answer (which is kept) is one token and cannot repeat the prompt's marker.
    marker = f"privacy-marker-{uuid.uuid4().hex}"
    model = worker.get("/v1/models").json()["data"][0]["id"]
    answered = [
        ("/v1/generate", {"prompt": f"Note {marker}", "max_tokens": 1, "stop": [f"{marker}-stop"]}),
        (
            "/v1/chat/completions",
            {"model": model, "messages": [{"role": "user", "content": marker}], "max_tokens": 1},
        ),
        ("/v1/embed", {"input": [f"embed {marker}"]}),
    ]
    cache_keys = []
    for path, body in answered:
        response = worker.post(path, json=body)
        assert response.status_code == 200, (path, response.text)
        cache_keys.append(response.headers["x-cache-key"])
    streamed = worker.post(
        "/v1/generate", json={"prompt": f"stream {marker}", "max_tokens": 1, "stream": True}
    )
    assert streamed.status_code == 200, streamed.text
    # Refused by the runtime (longer than the context window): its 400 and its logs must not echo it.
    refused = worker.post("/v1/generate", json={"prompt": f"{marker} " + "😀" * 3000, "max_tokens": 1})
    assert refused.status_code == 400, refused.text
    assert marker not in refused.text

    # Write-behind: once the answers' D1 rows exist, whatever the requests wrote has been written.
    wanted = ", ".join(f"'{key}'" for key in cache_keys)
    query = f"SELECT cache_key FROM answer_cache WHERE cache_key IN ({wanted})"
    wait_for(
        lambda: len(stack.d1_query(query)) == len(cache_keys), lambda: (cache_keys, stack.d1_query(query))
    )

    # The scan reads what the stores keep: the cache keys (hashes) are there.
    assert files_holding(stack.persist_dir, cache_keys[0].encode()), "the scan found no D1/KV storage"
    needle = marker.encode()
    assert files_holding(stack.persist_dir, needle) == [], "prompt text stored in D1, KV or DO storage"
    assert files_holding(stack.logs_dir, needle) == [], "prompt text written to a log"


def wait_for(condition, explain) -> None:
    deadline = time.monotonic() + ROW_SETTLE_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, (
            f"the D1 rows of the answered requests never appeared: {explain()}"
        )
        time.sleep(0.5)

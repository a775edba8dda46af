"""DLP through the real stack (wrangler dev + the runtime, DLP_POLICY=block as in edge/wrangler.jsonc):
card numbers and SSNs in the forms people paste are refused with a 422 naming the class, never echoed,
never sent to the runtime and never cached (docs/dlp.md). The labelled corpus runs in the Worker tests."""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.e2e

FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")

# (route, body, class, the secret's digits)
PASTED = {
    "card-with-nbsp": (
        "/v1/generate",
        {"prompt": "Charge 4111\u00a01111\u00a01111\u00a01111 please.", "max_tokens": 4},
        "payment_card",
        "4111111111111111",
    ),
    "card-with-expiry": (
        "/v1/generate",
        {"prompt": "Card 5500 0000 0000 0004 12/25, cvv 123.", "max_tokens": 4},
        "payment_card",
        "5500000000000004",
    ),
    "card-in-full-width-digits": (
        "/v1/completions",
        {"prompt": f"pay with {'4242 4242 4242 4242'.translate(FULLWIDTH)}", "max_tokens": 4},
        "payment_card",
        "4242424242424242",
    ),
    "card-with-one-zero-width-space-between-groups": (
        "/v1/generate",
        {"prompt": "Charge 4111\u200b1111 1111 1111 please.", "max_tokens": 4},
        "payment_card",
        "4111111111111111",
    ),
    "card-split-across-chat-messages": (
        "/v1/chat/completions",
        {
            "messages": [
                {"role": "user", "content": "my card number is 3782 822463"},
                {"role": "user", "content": "10005"},
            ],
            "max_tokens": 4,
        },
        "payment_card",
        "378282246310005",
    ),
    "card-split-across-chat-content-and-stop-sent-first": (
        "/v1/chat/completions",
        {
            "stop": ["1111 1111"],
            "messages": [{"role": "user", "content": "my card is 4111 1111"}],
            "max_tokens": 4,
        },
        "payment_card",
        "4111111111111111",
    ),
    "card-as-a-json-key-on-the-openai-route": (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "6011111111111117": True},
        "payment_card",
        "6011111111111117",
    ),
    "ssn-without-separators": (
        "/v1/generate",
        {"prompt": "Employee SSN 219099999 needs updating.", "max_tokens": 4},
        "us_ssn",
        "219099999",
    ),
}


def digits_of(text: str) -> str:
    return "".join(str(int(char)) for char in text if char.isdecimal())


def cache_rows(stack) -> int:
    """Rows in every D1 cache table, whatever the schema names them."""
    tables = [row["name"] for row in stack.d1_query("SELECT name FROM sqlite_master WHERE type = 'table'")]
    cache_tables = [name for name in tables if "cache" in name and re.fullmatch(r"[a-z_]+", name)]
    assert cache_tables, tables
    total = " + ".join(f"(SELECT COUNT(*) FROM {name})" for name in cache_tables)
    return stack.d1_query(f"SELECT {total} AS n")[0]["n"]


def settled_cache_rows(stack) -> int:
    """The count once earlier tests' write-behind has landed: two reads a second apart agree."""
    previous = cache_rows(stack)
    for _ in range(10):
        time.sleep(1)
        current = cache_rows(stack)
        if current == previous:
            return current
        previous = current
    pytest.fail("the D1 cache tables never stopped changing")


def send_pasted(worker, name):
    route, body, cls, secret = PASTED[name]
    return worker.post(route, json=body), cls, secret


@pytest.mark.parametrize("name", PASTED)
def test_pasted_sensitive_data_is_blocked_before_the_runtime_and_never_echoed(worker, inference_count, name):
    runs_before = inference_count("generate")

    response, cls, secret = send_pasted(worker, name)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "dlp_violation" and f"({cls})" in error["message"], error
    assert secret not in digits_of(response.text)
    assert inference_count("generate") == runs_before, "the blocked request reached the runtime"


def test_blocked_requests_leave_nothing_in_the_cache(stack, worker):
    before = settled_cache_rows(stack)

    statuses = [send_pasted(worker, name)[0].status_code for name in PASTED]

    assert statuses == [422] * len(PASTED)
    assert settled_cache_rows(stack) == before, "a blocked request was cached"

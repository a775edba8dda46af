"""The wire contract (contract/) for the Python tests: schema validators, fixtures, SSE parsing."""

import base64
import json
from functools import cache
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

CONTRACT = Path(__file__).resolve().parents[1] / "contract"
ROUTES = json.loads((CONTRACT / "routes.json").read_text())
ERRORS = json.loads((CONTRACT / "errors.json").read_text())
PIECES_HEADER = ROUTES["pieces_header"]


@cache
def _registry() -> Registry:
    resources = []
    for path in sorted((CONTRACT / "schemas").glob("*.json")):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@cache
def validator(schema_file: str) -> Draft202012Validator:
    schema = json.loads((CONTRACT / "schemas" / schema_file).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry())


def check(schema_file: str, value: object) -> None:
    """Raises jsonschema.ValidationError (the path and the reason) when `value` breaks the contract."""
    validator(schema_file).validate(value)


def sse_data(stream: str) -> list[str]:
    """The data payloads of a server-sent event stream, which must be nothing but `data: …` events."""
    assert stream.endswith("\n\n"), stream[-200:]
    events = stream[:-2].split("\n\n")
    assert all(event.startswith("data: ") and "\n" not in event for event in events), stream[:500]
    return [event[len("data: ") :] for event in events]


def check_stream(route: str, stream: str, *, complete: bool = True) -> list[dict]:
    """Checks every event of a stream against the route's event schema and its ending; returns the events."""
    spec = ROUTES["routes"][route]
    payloads = sse_data(stream)
    if spec["done"] is not None:
        assert payloads[-1] == spec["done"], payloads[-1]
        payloads = payloads[:-1]
    events = [json.loads(payload) for payload in payloads]
    for event in events:
        check(spec["event"], event)
    if complete:
        assert "error" not in events[-1], events[-1]
    return events


def check_answer(route: str, body: str) -> dict:
    answer = json.loads(body)
    check(ROUTES["routes"][route]["answer"], answer)
    return answer


def golden_fixtures() -> dict[str, dict]:
    return {
        path.stem: json.loads(path.read_text())
        for path in sorted((CONTRACT / "fixtures").glob("*.json"))
        if path.stem != "bad-requests"
    }


def bad_requests(layer: str) -> list[dict]:
    cases = json.loads((CONTRACT / "fixtures" / "bad-requests.json").read_text())["cases"]
    return [case for case in cases if layer in case["layers"]]


def fill(text: str, limits: dict[str, int]) -> str:
    for name, value in limits.items():
        text = text.replace("{" + name + "}", str(value))
    return text


def bad_request_body(case: dict, limits: dict[str, int]) -> bytes | None:
    """The raw body a bad-request case sends, its placeholders filled with this layer's limits."""
    if case.get("oversize"):
        return json.dumps({"prompt": "x" * limits["max_body_bytes"]}).encode()
    if "body_base64" in case:
        return base64.b64decode(case["body_base64"])
    if "body" not in case:
        return None
    return fill(case["body"], limits).encode()


def expected_error(case: dict, limits: dict[str, int]) -> dict:
    error = dict(case["error"])
    error["message"] = fill(error["message"], limits)
    return {"error": error}


def limits_for(max_body_bytes: int, max_tokens_limit: int) -> dict[str, int]:
    return {
        "max_body_bytes": max_body_bytes,
        "max_tokens_limit": max_tokens_limit,
        "max_tokens_limit_plus_one": max_tokens_limit + 1,
    }

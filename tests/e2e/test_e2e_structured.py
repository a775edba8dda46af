"""Structured output through the real stack with the official `openai` client: answers validate, come
back byte-identical from the Worker's cache, and failures are clear 400s that nothing caches."""

import json

import openai
import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field

pytestmark = pytest.mark.e2e

# Short and bounded (maxLength, fixed keys), so the answers end well within MAX_TOKENS whatever the random
# part of the prompt makes the model write; small enough for the Worker's stream_required estimate too.
MAX_TOKENS = 64
SCHEMA = {
    "type": "object",
    "properties": {
        "planet": {"type": "string", "maxLength": 8},
        "moons": {"type": "integer"},
        "has_rings": {"type": "boolean"},
    },
    "required": ["planet", "moons", "has_rings"],
    "additionalProperties": False,
}


class Planet(BaseModel):
    name: str = Field(max_length=8)
    has_rings: bool


@pytest.fixture(scope="module")
def through_worker(stack, api_key):
    return openai.OpenAI(base_url=f"{stack.worker_url}/v1", api_key=api_key, max_retries=0)


@pytest.fixture(scope="module")
def model(through_worker) -> str:
    return through_worker.models.list().data[0].id


def ask(topic: str) -> list[dict]:
    return [{"role": "user", "content": f"{topic}. Name a planet of the solar system as JSON."}]


def test_a_json_schema_answer_validates_and_is_identical_from_the_cache(
    through_worker, stack, model, unique_prompt
):
    request = {
        "model": model,
        "messages": ask(unique_prompt("planets")),
        "max_tokens": MAX_TOKENS,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "planet", "schema": SCHEMA, "strict": True},
        },
    }
    miss = through_worker.chat.completions.with_raw_response.create(**request)
    hit = through_worker.chat.completions.with_raw_response.create(**request)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert hit.content == miss.content
    content = miss.parse().choices[0].message.content
    Draft202012Validator(SCHEMA).validate(json.loads(content))

    direct = openai.OpenAI(
        base_url=f"{stack.runtime_url}/v1", api_key=stack.secrets["ORIGIN_TOKEN"], max_retries=0
    )
    assert direct.chat.completions.create(**request).choices[0].message.content == content

    streamed = through_worker.chat.completions.create(**request, stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices) == content


def test_json_object_gives_a_json_object(through_worker, model):
    # Any object has no bound on its length: a fixed prompt the model is known to finish within the limit.
    messages = [{"role": "user", "content": 'Return JSON: {"planet": <a planet name>}'}]
    answer = through_worker.chat.completions.create(
        model=model, messages=messages, max_tokens=MAX_TOKENS, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(answer.choices[0].message.content), dict)


def test_the_clients_own_pydantic_schema_is_enforced_and_parsed(through_worker, model, unique_prompt):
    completion = through_worker.chat.completions.parse(
        model=model, messages=ask(unique_prompt("rings")), max_tokens=MAX_TOKENS, response_format=Planet
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Planet) and isinstance(parsed.has_rings, bool)


def test_an_unenforceable_keyword_is_a_400_naming_it(through_worker, model, unique_prompt):
    schema = {"type": "object", "properties": {"moons": {"type": "integer", "minimum": 0}}}
    with pytest.raises(openai.BadRequestError) as refused:
        through_worker.chat.completions.create(
            model=model,
            messages=ask(unique_prompt("comets")),
            max_tokens=16,
            response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
        )
    error = refused.value.body
    assert error["field"] == "response_format.json_schema.schema.properties.moons.minimum"


def test_a_budget_too_small_for_the_json_is_a_400_and_nothing_is_cached(
    through_worker, model, unique_prompt, inference_count
):
    request = {
        "model": model,
        "messages": ask(unique_prompt("asteroids")),
        "max_tokens": 3,
        "response_format": {"type": "json_schema", "json_schema": {"name": "planet", "schema": SCHEMA}},
    }
    before = inference_count("generate")
    for _ in range(2):
        with pytest.raises(openai.BadRequestError) as refused:
            through_worker.chat.completions.create(**request)
        assert refused.value.body["field"] == "max_tokens"
    assert inference_count("generate") == before + 2  # the second one was not answered from a cache

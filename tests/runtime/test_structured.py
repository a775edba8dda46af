"""Structured output fails closed: every answer parses and validates against the schema (checked with the
`jsonschema` package, against the schema as sent), a keyword the grammar cannot enforce is a 400 naming
it, and a token budget that ends before the JSON does is an error, never a cut answer."""

import json

import httpx
import numpy as np
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from runtime.config.settings import RuntimeSettings
from runtime.engine import grammar as grammar_module
from runtime.engine.fingerprint import compute_fingerprint
from runtime.engine.grammar import GrammarRefused, answer_problem, grammar_text
from runtime.engine.json_schema import SchemaRefused, checked_schema
from tests.runtime.conftest import runtime_settings

MODEL = "gemma-3-270m-q4_k_m"
PERSON_PROMPT = "Describe the mathematician Ada Lovelace as JSON."

# Each schema exercises keywords the checker lets through; the model writes an answer under each.
SCHEMAS = {
    "object with enum, integer, bounded string and array": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 2, "maxLength": 24},
            "age": {"type": "integer"},
            "field": {"type": "string", "enum": ["mathematics", "poetry", "engineering"]},
            "known_for": {
                "type": "array",
                "items": {"type": "string", "maxLength": 16},
                "minItems": 1,
                "maxItems": 2,
            },
        },
        "required": ["name", "age", "field", "known_for"],
        "additionalProperties": False,
    },
    "nested objects, optional property, number, boolean, null": {
        "type": "object",
        "properties": {
            "person": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 20},
                    "alive": {"type": "boolean"},
                    "height_m": {"type": "number"},
                },
                "required": ["name", "alive"],
            },
            "note": {"type": "null"},
        },
        "required": ["person", "note"],
    },
    "anyOf, $defs and a recursive $ref": {
        "$defs": {
            "step": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "maxLength": 12},
                    "then": {"anyOf": [{"$ref": "#/$defs/step"}, {"type": "null"}]},
                },
                "required": ["title", "then"],
            }
        },
        "type": "object",
        "properties": {"plan": {"$ref": "#/$defs/step"}, "score": {"type": ["integer", "string"]}},
        "required": ["plan", "score"],
    },
    "tuple, const and uuid": {
        "type": "object",
        "properties": {
            "version": {"const": "v-one"},
            "pair": {
                "type": "array",
                "prefixItems": [{"type": "string", "maxLength": 8}, {"type": "integer"}],
            },
            "id": {"type": "string", "format": "uuid"},
        },
        "required": ["version", "pair", "id"],
    },
}


def validate(text: str, schema: dict) -> object:
    value = json.loads(text)
    Draft202012Validator(schema, format_checker=FormatChecker()).validate(value)
    return value


def chat(client: httpx.Client, schema: dict | None = None, **fields) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": PERSON_PROMPT}], "max_tokens": 160}
    if schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    return client.post("/v1/chat/completions", json={**body, **fields})


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_answer_parses_and_validates(client, name):
    schema = SCHEMAS[name]
    response = chat(client, schema)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    validate(choice["message"]["content"], schema)
    assert chat(client, schema).content == response.content  # deterministic


@pytest.mark.parametrize(
    "name", ["object with enum, integer, bounded string and array", "tuple, const and uuid"]
)
def test_seeded_sampling_answers_parse_validate_and_repeat(client, name):
    """With temperature > 0 the sampler draws from the masked logits: every one of n choices is valid."""
    schema = SCHEMAS[name]
    sampled = {"temperature": 0.9, "top_p": 0.95, "seed": 11, "n": 3}
    response = chat(client, schema, **sampled)
    assert response.status_code == 200, response.text
    choices = response.json()["choices"]
    assert len(choices) == 3
    for choice in choices:
        assert choice["finish_reason"] == "stop"
        validate(choice["message"]["content"], schema)
    assert chat(client, schema, **sampled).content == response.content


def test_native_generate_takes_json_schema_and_streams_the_same_text(client):
    schema = SCHEMAS["nested objects, optional property, number, boolean, null"]
    body = {"prompt": "A JSON record about Ada Lovelace:", "max_tokens": 160, "json_schema": schema}
    response = client.post("/v1/generate", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    validate(answer["text"], schema)
    with client.stream("POST", "/v1/generate", json={**body, "stream": True}) as streamed:
        events = [json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: ")]
    assert "".join(e["token"] for e in events[:-1]) == answer["text"] == events[-1]["text"]


def test_json_object_gives_a_json_object_also_streamed(client):
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Give Ada Lovelace's name and field as a JSON object."}],
        "max_tokens": 200,
        "response_format": {"type": "json_object"},
    }
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    content = response.json()["choices"][0]["message"]["content"]
    assert isinstance(json.loads(content), dict)
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as streamed:
        lines = [line[6:] for line in streamed.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == content


def test_text_response_format_is_plain_generation(client):
    plain = chat(client, max_tokens=8).json()["choices"][0]["message"]["content"]
    text = chat(client, max_tokens=8, response_format={"type": "text"}).json()
    assert text["choices"][0]["message"]["content"] == plain


def test_property_order_follows_required_not_the_objects_key_order(client):
    """The Worker's cache key sorts object keys, so two schemas that differ only in key order must give
    the same answer: properties are written in `required`'s order, then the optional ones by name."""
    schema = SCHEMAS["object with enum, integer, bounded string and array"]
    reordered = {**schema, "properties": dict(reversed(schema["properties"].items()))}
    first, second = chat(client, schema), chat(client, reordered)
    assert first.status_code == second.status_code == 200
    assert first.json()["choices"][0] == second.json()["choices"][0]
    content = first.json()["choices"][0]["message"]["content"]
    assert list(json.loads(content)) == schema["required"]


def test_a_budget_that_ends_before_the_json_is_an_error_naming_it(client):
    response = chat(client, SCHEMAS["nested objects, optional property, number, boolean, null"], max_tokens=4)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "max_tokens" and "not complete after 4 tokens" in error["message"]
    response = chat(client, {"type": "object"}, max_completion_tokens=3)
    assert response.json()["error"]["field"] == "max_completion_tokens"


def test_a_streamed_budget_error_ends_the_stream_with_an_error_event(client):
    body = {"prompt": "Ada as JSON:", "max_tokens": 3, "json_schema": {"type": "object"}, "stream": True}
    with client.stream("POST", "/v1/generate", json=body) as streamed:
        assert streamed.status_code == 200
        events = [json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: ")]
    assert all("token" in e for e in events[:-1])
    assert events[-1]["error"]["type"] == "invalid_request" and events[-1]["error"]["field"] == "max_tokens"
    assert not any(e.get("done") for e in events)


# (schema, the field named in the 400): each keyword the grammar would silently ignore, and invalid schemas.
REFUSED = [
    ({"type": "integer", "minimum": 0}, ".minimum"),
    ({"type": "string", "pattern": "^a+$"}, ".pattern"),
    ({"type": "string", "format": "email"}, ".format"),
    ({"type": "string", "format": "date"}, ".format"),
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, ".oneOf"),
    ({"allOf": [{"type": "object"}]}, ".allOf"),
    ({"not": {"type": "null"}}, ".not"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}, ".required[0]"),
    (
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True},
        ".additionalProperties",
    ),
    ({"type": "object", "properties": {"a": {"type": "integer", "maximum": 3}}}, ".properties.a.maximum"),
    ({"type": "object", "minProperties": 1}, ".minProperties"),
    ({"type": "array", "minItems": 2}, ".minItems"),
    ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, ".uniqueItems"),
    ({"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 2}, ".minItems"),
    ({"type": "array", "items": {"type": "string"}, "maxItems": 1000}, ".maxItems"),
    ({"type": "array", "prefixItems": [{"type": "string"}], "maxItems": 1}, ".maxItems"),
    ({"type": ["string", "null"], "maxLength": 3}, ".maxLength"),
    ({"enum": ["a", 1], "type": "string"}, ".enum[1]"),
    ({"const": "a", "enum": ["a"]}, ".enum"),
    ({"$ref": "#/$defs/missing"}, ".$ref"),
    ({"$ref": "https://example.com/schema.json"}, ".$ref"),
    ({"$ref": "#/$defs/a", "type": "object", "$defs": {"a": {"type": "object"}}}, ".type"),
    ({"type": "object", "properties": {"a": {"$defs": {}, "type": "string"}}}, ".properties.a.$defs"),
    ({"minLength": 2}, ".minLength"),
    ({"type": "string", "properties": {}}, ".properties"),
    ({"type": "object", "properties": {"a": True}}, ".properties.a"),
    ({"type": "strange"}, ".type"),
    ({"type": "object", "required": "a"}, ".required"),
    ({"nullable": True, "type": "string"}, ".nullable"),
    # Alternatives the grammar would follow side by side into every nested level (exponential stacks).
    (
        {
            "$defs": {
                "n": {
                    "anyOf": [
                        {"type": "array", "items": {"$ref": "#/$defs/n"}},
                        {"type": "array", "items": {"$ref": "#/$defs/n"}},
                    ]
                }
            },
            "$ref": "#/$defs/n",
        },
        ".$defs.n.anyOf[1]",
    ),
    (
        {
            "anyOf": [
                {"type": "object"},
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            ]
        },
        ".anyOf[1]",
    ),
    (
        {
            "anyOf": [
                {"type": "object", "properties": {"kind": {"const": "a"}}, "required": ["kind"]},
                {"type": "object", "properties": {"kind": {"enum": ["b", "a"]}}, "required": ["kind"]},
            ]
        },
        ".anyOf[1]",
    ),
]


@pytest.mark.parametrize(("schema", "where"), REFUSED)
def test_what_the_grammar_cannot_enforce_is_refused_naming_it(client, schema, where):
    response = client.post("/v1/generate", json={"prompt": "x", "json_schema": schema})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert error["field"] == "json_schema" + where, error
    assert error["message"].startswith(error["field"] + ": ")


def test_the_openai_routes_name_the_keyword_inside_response_format(client):
    response = chat(client, {"type": "object", "properties": {"n": {"type": "number", "multipleOf": 2}}})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "response_format.json_schema.schema.properties.n.multipleOf"


@pytest.mark.parametrize(
    ("response_format", "field"),
    [
        ({"type": "json_schema"}, "response_format.json_schema"),
        ({"type": "xml"}, "response_format.type"),
        ({"type": "json_object", "json_schema": {"name": "a", "schema": {}}}, "response_format.json_schema"),
        (
            {"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}},
            "response_format.json_schema.name",
        ),
        ({"type": "json_schema", "json_schema": {"name": "a"}}, "response_format.json_schema.schema"),
        (
            {"type": "json_schema", "json_schema": {"name": "a", "schema": []}},
            "response_format.json_schema.schema",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "a", "schema": {}, "extra": 1}},
            "response_format.json_schema.extra",
        ),
    ],
)
def test_a_malformed_response_format_is_refused(client, response_format, field):
    response = chat(client, response_format=response_format)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_stop_strings_are_refused_with_a_schema(client):
    response = client.post(
        "/v1/generate", json={"prompt": "x", "stop": ["}"], "json_schema": {"type": "object"}}
    )
    assert response.status_code == 400 and response.json()["error"]["field"] == "stop"
    response = chat(client, None, stop="}", response_format={"type": "json_object"})
    assert response.status_code == 400 and response.json()["error"]["field"] == "stop"


def test_a_ref_cycle_that_never_writes_a_value_is_a_400(client):
    schema = {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}
    response = client.post("/v1/generate", json={"prompt": "x", "json_schema": schema})
    assert response.status_code == 400 and response.json()["error"]["field"] == "json_schema"


def test_integral_floats_count_as_integers_in_bounds(loaded_models):
    schema = {
        "type": "array",
        "items": {"type": "string", "minLength": 1.0, "maxLength": 2.0},
        "maxItems": 2.0,
    }
    assert grammar_accepts(loaded_models.generator, schema, '["ab", "c"]')
    assert not grammar_accepts(loaded_models.generator, schema, '["abc"]')


def test_schema_size_and_depth_limits(client):
    deep: dict = {"type": "string"}
    for _ in range(20):
        deep = {"type": "object", "properties": {"a": deep}}
    response = client.post("/v1/generate", json={"prompt": "x", "json_schema": deep})
    assert response.status_code == 400 and "deeper than" in response.json()["error"]["message"]
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(600)}}
    response = client.post("/v1/generate", json={"prompt": "x", "json_schema": wide})
    assert response.status_code == 400 and "subschemas" in response.json()["error"]["message"]


# --- the grammar itself, fed text token by token (the converter's flaws this runtime corrects) ---


def grammar_accepts(generator, schema: dict, text: str) -> bool:
    """True when the grammar of `schema` allows `text` token by token and then allows the end."""
    constraint = generator.grammar_constraint(grammar_text(checked_schema(schema)))
    try:
        for token in generator.tokenize_prompt(text)[1:]:  # without the BOS token
            if not constraint.allows(token):
                return False
            constraint.accept(token)
        end_of_sequence = generator.tokenize_prompt("<eos>")[1]
        return constraint.allows(end_of_sequence)
    finally:
        constraint.close()


def test_strings_hold_no_raw_control_characters_and_no_surrogate_escapes(loaded_models):
    generator = loaded_models.generator
    assert grammar_accepts(generator, {"type": "string"}, '"a\\nb"')
    assert not grammar_accepts(generator, {"type": "string"}, '"a\nb"')  # a raw newline is not JSON
    assert not grammar_accepts(generator, {"type": "string"}, '"a\tb"')
    assert grammar_accepts(generator, {"type": "string"}, '"\\u00e9 \\u20ac"')
    # Two escapes would be one character once decoded: minLength 2 would be satisfied by one character.
    assert not grammar_accepts(generator, {"type": "string", "minLength": 2}, '"\\ud83d\\ude00"')


def test_enum_values_with_backslashes_quotes_and_newlines_are_written_as_json(loaded_models):
    generator = loaded_models.generator
    values = ["a\\b", 'c"d', "e\nf", "é"]
    schema = {"enum": values}
    for value in values:
        assert grammar_accepts(generator, schema, json.dumps(value))
    assert not grammar_accepts(generator, schema, '"e\nf"')
    assert not grammar_accepts(generator, schema, '"a\\b"')  # "\b" is a backspace: another value


def test_a_property_named_like_a_builtin_rule_does_not_replace_it(loaded_models):
    generator = loaded_models.generator
    schema = {
        "type": "object",
        "properties": {"integral part": {"type": "string", "maxLength": 3}, "n": {"type": "number"}},
        "required": ["integral part", "n"],
    }
    assert grammar_accepts(generator, schema, '{"integral part": "abc", "n": 12.5}')
    assert not grammar_accepts(generator, schema, '{"integral part": "abc", "n": "abc"}')


def test_a_ref_resolves_to_its_own_definition_not_a_rule_of_the_same_name(loaded_models):
    generator = loaded_models.generator
    schema = {
        "$defs": {"name": {"type": "integer"}},
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 4}, "id": {"$ref": "#/$defs/name"}},
        "required": ["name", "id"],
    }
    assert grammar_accepts(generator, schema, '{"name": "abc", "id": 7}')
    assert not grammar_accepts(generator, schema, '{"name": "abc", "id": "abc"}')


def test_the_end_is_allowed_only_once_the_json_is_complete(loaded_models):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert not grammar_accepts(loaded_models.generator, schema, '{"a": 1')
    assert not grammar_accepts(loaded_models.generator, schema, "{}")
    assert grammar_accepts(loaded_models.generator, schema, '{"a": 1}')


def test_a_grammar_llama_cpp_cannot_build_is_refused(loaded_models):
    with pytest.raises(GrammarRefused):
        loaded_models.generator.grammar_constraint("root ::= undefined-rule")


def test_the_final_check_names_what_is_wrong():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert answer_problem('{"a": 1}', schema) is None
    assert "not JSON" in answer_problem('{"a": 1', schema)
    assert "does not validate" in answer_problem('{"a": "x"}', schema)


def test_checker_normalises_to_what_the_cache_key_covers():
    a = {"type": "object", "title": "t", "properties": {"x": {"type": "string"}, "y": {"type": "integer"}}}
    b = {
        "properties": {"y": {"type": "integer", "description": "d"}, "x": {"type": "string"}},
        "type": "object",
    }
    assert checked_schema(a) == checked_schema(b)
    assert list(checked_schema(a)["properties"]) == ["x", "y"]
    # Key order anywhere else (definitions, object values of an enum) changes neither grammar nor answer id.
    c = {"$defs": {"p": {"type": "null"}, "q": {"enum": [{"b": 1, "a": 2}]}}, "$ref": "#/$defs/q"}
    d = {"$ref": "#/$defs/q", "$defs": {"q": {"enum": [{"a": 2, "b": 1}]}, "p": {"type": "null"}}}
    assert json.dumps(checked_schema(c)) == json.dumps(checked_schema(d))
    assert grammar_text(checked_schema(c)) == grammar_text(checked_schema(d))
    with pytest.raises(SchemaRefused):
        checked_schema([{"type": "object"}])


def test_the_fingerprint_covers_the_grammar_engine(loaded_models, monkeypatch):
    settings: RuntimeSettings = runtime_settings()
    today = compute_fingerprint(loaded_models.model, settings).value
    monkeypatch.setitem(grammar_module.GRAMMAR_ENGINE, "converter_sha256", "another converter")
    assert compute_fingerprint(loaded_models.model, settings).value != today


def test_the_best_allowed_token_is_the_argmax_of_the_masked_logits(loaded_models):
    """The shortcut (the top 64 logits first) chooses exactly what masking the whole vocabulary does,
    ties included, in grammar states that allow few tokens (a key, a digit) and many (a string)."""
    generator = loaded_models.generator
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
        "required": ["n", "s"],
    }
    constraint = generator.grammar_constraint(grammar_text(checked_schema(schema)))
    rng = np.random.default_rng(7)
    try:
        for prefix in ['{"n', '{"n": 4', '{"n": 4, "s": "ab']:
            for token in generator.tokenize_prompt(prefix)[1:]:
                constraint.accept(token)
            for _ in range(5):
                logits = rng.standard_normal(generator.n_vocab).astype(np.float32)
                masked = constraint.mask(logits)
                assert constraint.best_allowed(logits) == int(np.argmax(masked))
                # A tie between the best allowed token and a lower-numbered one outside the top 64.
                best = int(np.argmax(masked))
                tied = logits.copy()
                tied[:best] = np.minimum(tied[:best], -10)
                tied[0] = tied[best]
                assert constraint.best_allowed(tied) == int(np.argmax(constraint.mask(tied)))
            constraint = generator.grammar_constraint(grammar_text(checked_schema(schema)))
    finally:
        constraint.close()


def test_a_discriminated_union_is_accepted_and_enforced(loaded_models):
    """Objects told apart by the const value of their first key are not ambiguous: both are allowed."""
    variant = {
        "circle": {"kind": {"const": "circle"}, "radius": {"type": "number"}},
        "square": {"kind": {"const": "square"}, "side": {"type": "number"}},
    }
    schema = {
        "anyOf": [
            {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}
            for props in variant.values()
        ]
    }
    generator = loaded_models.generator
    assert grammar_accepts(generator, schema, '{"kind": "circle", "radius": 2}')
    assert grammar_accepts(generator, schema, '{"kind": "square", "side": 3}')
    assert not grammar_accepts(generator, schema, '{"kind": "circle", "side": 3}')


def test_a_property_named_empty_does_not_take_the_start_rule(loaded_models):
    schema = {"type": "object", "properties": {"": {"type": "string", "maxLength": 3}}, "required": [""]}
    assert grammar_accepts(loaded_models.generator, schema, '{"": "ab"}')
    assert not grammar_accepts(loaded_models.generator, schema, '"ab"')


# A pydantic model's schema when it is itself a $ref (as pydantic writes a model that refers to itself): a
# root $ref into $defs, whose definition refers to the other definitions.
ROOT_REF_SCHEMA = {
    "$defs": {
        "Name": {"type": "string", "maxLength": 12},
        "Person": {
            "properties": {"name": {"$ref": "#/$defs/Name"}, "born": {"type": "integer"}},
            "required": ["name", "born"],
            "type": "object",
        },
    },
    "$ref": "#/$defs/Person",
}


def test_a_root_ref_whose_definition_refers_to_others_is_served(client):
    response = chat(client, ROOT_REF_SCHEMA)
    assert response.status_code == 200, response.text
    validate(response.json()["choices"][0]["message"]["content"], ROOT_REF_SCHEMA)


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"type": "integer"}}, "$ref": "#/$defs/a"},
        {
            "$defs": {"a": {"$ref": "#/definitions/b"}},
            "definitions": {"b": {"type": "integer"}},
            "$ref": "#/$defs/a",
        },
    ],
)
def test_refs_reached_only_through_other_refs_resolve(loaded_models, schema):
    assert grammar_accepts(loaded_models.generator, schema, "7")
    assert not grammar_accepts(loaded_models.generator, schema, '"7"')


def test_a_ref_cycle_through_two_definitions_is_a_400(client):
    schema = {
        "$defs": {"a": {"anyOf": [{"$ref": "#/$defs/b"}, {"type": "integer"}]}, "b": {"$ref": "#/$defs/a"}},
        "$ref": "#/$defs/a",
    }
    response = client.post("/v1/generate", json={"prompt": "x", "json_schema": schema})
    assert response.status_code == 400 and response.json()["error"]["field"] == "json_schema"


def test_literal_values_are_written_as_the_cache_key_sees_them(loaded_models):
    """The Worker's key sorts every object's keys (canonicalJson): two schemas whose const or enum
    objects differ only in key order share a key, so they must write the same answer."""
    for keyword, value, reordered in (
        ("const", {"b": 1, "a": {"d": 2, "c": 3}}, {"a": {"c": 3, "d": 2}, "b": 1}),
        ("enum", [{"b": 1, "a": 2}, "x"], [{"a": 2, "b": 1}, "x"]),
    ):
        first = grammar_text(checked_schema({keyword: value}))
        assert first == grammar_text(checked_schema({keyword: reordered}))
    assert grammar_accepts(loaded_models.generator, {"const": {"b": 1, "a": 2}}, '{"a": 2, "b": 1}')


def test_a_literal_number_beyond_a_double_is_refused(client):
    """1e400 is valid JSON that Python reads as infinity; the grammar would write it as `Infinity`."""
    raw = b'{"prompt": "x", "json_schema": {"enum": [1, {"a": [1e400]}]}}'
    response = client.post("/v1/generate", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "json_schema.enum"


@pytest.mark.parametrize(
    ("schema", "field", "words"),
    [
        ({"enum": []}, "json_schema.enum", "no value"),
        ({"$id": "https://example.com/person", "type": "string"}, "json_schema.$id", "not supported"),
        ({"type": "string", "$anchor": "name"}, "json_schema.$anchor", "not supported"),
    ],
)
def test_the_refusal_says_what_is_wrong(client, schema, field, words):
    """An empty enum was llama.cpp's "a $ref cycle?" and a root $id "supported only at the root"."""
    response = client.post("/v1/generate", json={"prompt": "x", "json_schema": schema})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == field and words in error["message"], error

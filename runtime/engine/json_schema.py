"""Which JSON Schemas structured output accepts: the ones whose every keyword the grammar enforces.

llama-cpp-python's converter (module llama_cpp.llama_grammar) turns a schema into a grammar by following one
branch per schema node and silently ignoring every keyword that branch does not read (`minimum`,
`pattern`, `oneOf`'s exclusivity, `required` names missing from `properties`, ...). A grammar that ignores
a keyword lets the model write answers the schema refuses, so this module walks the schema first and
refuses, naming the keyword and its path, anything the converter would not enforce (docs/runtime.md,
"Structured output"). What it lets through it also normalises, so that the grammar is a function of what
the Worker's cache key covers (its JSON with keys sorted): annotations are dropped, and each object's
properties are ordered as its `required` list names them, then the optional ones by name.
"""

import json
import math
import re
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

# Keywords that describe and never constrain: accepted anywhere, dropped before conversion.
ANNOTATIONS = frozenset(
    {"title", "description", "$comment", "examples", "default", "deprecated", "readOnly", "writeOnly"}
)
TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
# `$schema` is read as draft 2020-12 whatever it names; for the keywords accepted here draft-07 agrees.
SCHEMA_DIALECTS = frozenset(
    {
        "https://json-schema.org/draft/2020-12/schema",
        "http://json-schema.org/draft-07/schema#",
        "http://json-schema.org/draft-07/schema",
    }
)
# String formats the grammar spells out exactly (a uuid is 8-4-4-4-12 hex digits).
FORMATS = frozenset({"uuid"})

# What each kind of node may hold besides annotations (the converter's branch for it reads all of them).
_KIND_KEYWORDS = {
    "object": {"type", "properties", "required", "additionalProperties"},
    "array": {"type", "items", "prefixItems", "minItems", "maxItems"},
    "string": {"type", "minLength", "maxLength", "format"},
    "number": {"type"},
    "integer": {"type"},
    "boolean": {"type"},
    "null": {"type"},
}
_KEYWORD_KIND = {kw: kind for kind, kws in _KIND_KEYWORDS.items() for kw in kws if kw != "type"}

# Limits: a grammar grows with the schema, and repetition bounds expand into nested rules.
MAX_SCHEMA_BYTES = 32_768
MAX_DEPTH = 16
MAX_NODES = 256  # the converter's time grows with the square of an object's optional properties
MAX_ENUM_VALUES = 256
MAX_REPETITION = 256  # for minItems/maxItems and minLength/maxLength
_REF = re.compile(r"^#/(\$defs|definitions)/([^/~%]+)$")
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


class SchemaRefused(ValueError):
    """The schema is refused; `path` is where (a JSON path inside the schema, "" for the schema itself)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENTIFIER.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def checked_schema(schema: Any) -> dict:
    """The schema normalised for the converter, or SchemaRefused naming the first problem."""
    if not isinstance(schema, dict):
        raise SchemaRefused("", "must be a JSON Schema object")
    if len(json.dumps(schema, separators=(",", ":"))) > MAX_SCHEMA_BYTES:
        raise SchemaRefused("", f"is over {MAX_SCHEMA_BYTES} bytes of JSON")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        path = ""
        for key in error.absolute_path:
            path = child_path(path, key)
        raise SchemaRefused(path, f"is not a valid JSON Schema: {error.message}") from None
    normalised = _Walker(schema).root()
    _check_unambiguous(normalised)
    return normalised


def _kind_of(node: dict, path: str) -> str | None:
    """The kind a typed node is; None for a node that constrains nothing (any JSON value)."""
    declared = node.get("type")
    if isinstance(declared, str):
        return declared
    keywords = set(node) - ANNOTATIONS - {"type"}
    kinds = {_KEYWORD_KIND[kw] for kw in keywords if kw in _KEYWORD_KIND}
    if kinds == {"object"} or kinds == {"array"}:
        return kinds.pop()  # the converter reads these without a type, as JSON Schema means them
    for keyword in sorted(keywords):
        if keyword in _KEYWORD_KIND:
            kind = _KEYWORD_KIND[keyword]
            raise SchemaRefused(child_path(path, keyword), f'needs "type": "{kind}" beside it')
    return None


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    return True


class _Walker:
    def __init__(self, root: dict):
        self._root = root
        self._nodes = 0

    def root(self) -> dict:
        top = {k: v for k, v in self._root.items() if k not in ("$schema", "$defs", "definitions")}
        dialect = self._root.get("$schema")
        if dialect is not None and dialect not in SCHEMA_DIALECTS:
            raise SchemaRefused("$schema", f"must be one of {sorted(SCHEMA_DIALECTS)}")
        normalised = self.node(top, "", 0)
        for container in ("$defs", "definitions"):
            if container in self._root:
                normalised[container] = {
                    name: self.node(definition, child_path(child_path("", container), name), 1)
                    for name, definition in sorted(self._root[container].items())
                }
        return normalised

    def node(self, node: Any, path: str, depth: int) -> dict:
        if not isinstance(node, dict):
            raise SchemaRefused(path, "boolean schemas are not supported here; write an object schema")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise SchemaRefused(path, f"the schema has more than {MAX_NODES} subschemas")
        if depth > MAX_DEPTH:
            raise SchemaRefused(path, f"nests deeper than {MAX_DEPTH} levels")
        for keyword in ("$id", "$anchor"):
            if keyword in node:
                raise SchemaRefused(child_path(path, keyword), "is not supported: refer with #/$defs/<name>")
        for keyword in ("$defs", "definitions", "$schema"):
            if keyword in node and depth > 0:
                raise SchemaRefused(child_path(path, keyword), "is supported only at the schema's root")
        constraining = set(node) - ANNOTATIONS
        for exclusive in ("$ref", "anyOf", "const", "enum"):
            if exclusive in node:
                return self._exclusive(exclusive, node, constraining, path, depth)
        if isinstance(node.get("type"), list):
            self._alone("type", constraining, path, "a list of types")
            return {"type": list(dict.fromkeys(node["type"]))}
        kind = _kind_of(node, path)
        if kind is None:
            self._refuse_unknown(constraining, set(), path)
            return {"type": list(TYPES)}  # any JSON value (the converter would write `{}` as objects only)
        self._refuse_unknown(constraining, _KIND_KEYWORDS[kind], path, kind)
        return getattr(self, f"_{kind}", self._primitive)(node, kind, path, depth)

    def _refuse_unknown(
        self, keywords: set[str], allowed: set[str], path: str, kind: str | None = None
    ) -> None:
        for keyword in sorted(keywords - allowed):
            if keyword in _KEYWORD_KIND and kind is not None:
                reason = f"applies to {_KEYWORD_KIND[keyword]}s, but this schema's type is {kind}"
            else:
                reason = (
                    "is not enforced by the grammar, so it is refused (docs/runtime.md, Structured output)"
                )
            raise SchemaRefused(child_path(path, keyword), reason)

    def _alone(self, keyword: str, keywords: set[str], path: str, what: str) -> None:
        for other in sorted(keywords - {keyword}):
            raise SchemaRefused(
                child_path(path, other), f"beside {keyword} is not enforced: the grammar follows {what} only"
            )

    def _exclusive(self, keyword: str, node: dict, keywords: set[str], path: str, depth: int) -> dict:
        if keyword == "$ref":
            self._alone("$ref", keywords, path, "the $ref")
            return {"$ref": self._ref(node["$ref"], child_path(path, "$ref"))}
        if keyword == "anyOf":
            self._alone("anyOf", keywords, path, "the alternatives")
            options = node["anyOf"]
            return {
                "anyOf": [
                    self.node(o, child_path(child_path(path, "anyOf"), i), depth + 1)
                    for i, o in enumerate(options)
                ]
            }
        # const or enum: the grammar writes one of the listed values; beside them only `type` is read,
        # checked here against every value.
        if "const" in node and "enum" in node:
            raise SchemaRefused(child_path(path, "enum"), "beside const is not enforced; use one of them")
        self._refuse_unknown(keywords - {keyword}, {"type"}, path)
        values = [node["const"]] if keyword == "const" else node["enum"]
        # 1e400 is JSON but reads as infinity, which the grammar would write as the non-JSON `Infinity`
        # (the words NaN and Infinity themselves are refused by the body's parser, runtime/http/body.py).
        if not all(_finite(value) for value in values):
            raise SchemaRefused(child_path(path, keyword), "holds a number too large for a double")
        if not values:
            raise SchemaRefused(child_path(path, keyword), "lists no value: nothing satisfies the schema")
        if len(values) > MAX_ENUM_VALUES:
            raise SchemaRefused(child_path(path, keyword), f"lists more than {MAX_ENUM_VALUES} values")
        if "type" in node:
            type_check = Draft202012Validator({"type": node["type"]})
            for index, value in enumerate(values):
                if not type_check.is_valid(value):
                    where = (
                        child_path(path, keyword)
                        if keyword == "const"
                        else child_path(child_path(path, keyword), index)
                    )
                    raise SchemaRefused(where, f"is not of the type {json.dumps(node['type'])} beside it")
        # Keys sorted inside object values: the grammar writes them as given, the cache key sorts them.
        return {keyword: json.loads(json.dumps(node[keyword], sort_keys=True))}

    def _ref(self, ref: str, path: str) -> str:
        match = _REF.match(ref)
        if not match:
            raise SchemaRefused(path, "must point into the root's $defs or definitions (#/$defs/<name>)")
        container, name = match.groups()
        if name not in self._root.get(container, {}):
            raise SchemaRefused(path, f"points to {ref}, which the schema does not define")
        return ref

    def _object(self, node: dict, kind: str, path: str, depth: int) -> dict:
        properties = node.get("properties", {})
        required = list(dict.fromkeys(node.get("required", [])))
        for index, name in enumerate(required):
            if name not in properties:
                raise SchemaRefused(
                    child_path(child_path(path, "required"), index),
                    f"names {json.dumps(name)}, which is not in properties "
                    "(the grammar writes only declared properties)",
                )
        extra = node.get("additionalProperties")
        if extra not in (None, False) and properties:
            raise SchemaRefused(
                child_path(path, "additionalProperties"),
                "beside properties is refused: the grammar could repeat a declared property with "
                "another value; set it to false",
            )
        normalised: dict = {"type": "object"}
        if "properties" in node or "additionalProperties" in node:
            # The order the grammar writes them in: `required`'s order, then the optional ones by name.
            order = required + sorted(name for name in properties if name not in required)
            normalised["properties"] = {
                name: self.node(properties[name], child_path(child_path(path, "properties"), name), depth + 1)
                for name in order
            }
            normalised["required"] = required
            if extra is True:
                normalised["additionalProperties"] = True
            elif isinstance(extra, dict):
                normalised["additionalProperties"] = self.node(
                    extra, child_path(path, "additionalProperties"), depth + 1
                )
            else:
                normalised["additionalProperties"] = False
        return normalised

    def _array(self, node: dict, kind: str, path: str, depth: int) -> dict:
        if "prefixItems" in node:
            for keyword in ("items", "minItems", "maxItems"):
                if keyword in node and not (keyword == "items" and node["items"] is False):
                    raise SchemaRefused(
                        child_path(path, keyword),
                        "beside prefixItems is not enforced: the grammar writes exactly the prefixItems",
                    )
            items_path = child_path(path, "prefixItems")
            return {
                "type": "array",
                "prefixItems": [
                    self.node(s, child_path(items_path, i), depth + 1)
                    for i, s in enumerate(node["prefixItems"])
                ],
            }
        if "items" not in node:
            for keyword in ("minItems", "maxItems"):
                if keyword in node:
                    raise SchemaRefused(child_path(path, keyword), "needs items beside it")
            return {"type": "array", "items": {"type": list(TYPES)}}
        minimum, maximum = self._bounds(node, "minItems", "maxItems", path)
        normalised = {
            "type": "array",
            "items": self.node(node["items"], child_path(path, "items"), depth + 1),
        }
        normalised["minItems"] = minimum
        if maximum is not None:
            normalised["maxItems"] = maximum
        return normalised

    def _string(self, node: dict, kind: str, path: str, depth: int) -> dict:
        if "format" in node:
            if node["format"] not in FORMATS:
                raise SchemaRefused(
                    child_path(path, "format"),
                    f"must be one of {sorted(FORMATS)}: the grammar enforces no other",
                )
            for keyword in ("minLength", "maxLength"):
                if keyword in node:
                    raise SchemaRefused(child_path(path, keyword), "beside format is not enforced")
            return {"type": "string", "format": node["format"]}
        if "minLength" in node or "maxLength" in node:
            minimum, maximum = self._bounds(node, "minLength", "maxLength", path)
            normalised = {"type": "string", "minLength": minimum}
            if maximum is not None:
                normalised["maxLength"] = maximum
            return normalised
        return {"type": "string"}

    def _primitive(self, node: dict, kind: str, path: str, depth: int) -> dict:
        return {"type": kind}

    def _bounds(self, node: dict, low: str, high: str, path: str) -> tuple[int, int | None]:
        # JSON Schema counts 2.0 as an integer; the converter multiplies strings by it.
        minimum = int(node.get(low, 0))
        maximum = None if node.get(high) is None else int(node[high])
        for keyword, value in ((low, minimum), (high, maximum)):
            if value is not None and value > MAX_REPETITION:
                raise SchemaRefused(child_path(path, keyword), f"must be at most {MAX_REPETITION}")
        if maximum is not None and minimum > maximum:
            raise SchemaRefused(child_path(path, low), f"is above {high}: nothing satisfies the schema")
        return minimum, maximum


# --- ambiguity: the grammar follows every alternative that still matches, one parser stack each ---
#
# Alternatives that open the same container (two arrays, two objects that may start with the same key)
# stay alive side by side inside it, and each nested level multiplies them: with a recursive $ref, two
# identical array alternatives double the stacks per "[" and one token takes seconds after a dozen levels
# (llama.cpp's grammar has no bound), stalling every request decoded with it. Values that cannot contain
# another (strings, numbers, literals) end their ambiguity when they end, so only containers are checked:
# within an anyOf (or a list of types) at most one alternative may open an array, and objects must be told
# apart by their first key (the first name in `required`, which the grammar writes first) or, for the
# same first key, by the const/enum values of that key (a discriminated union).


Opening = tuple[str, str | None, frozenset[str] | None]


def _openings(node: dict, defs: dict, seen: frozenset[str] = frozenset()) -> list[Opening]:
    """How the values of `node` can open a container: ("array", None, None), or ("object", its first key,
    the JSON of the values that key's value is limited to by const/enum) with None for "any"."""
    if "$ref" in node:
        ref = node["$ref"]
        if ref in seen:  # a reference that opens nothing before it recurses: llama.cpp refuses it later
            return []
        container, name = _REF.match(ref).groups()
        return _openings(defs[container][name], defs, seen | {ref})
    if "anyOf" in node:
        return [opening for option in node["anyOf"] for opening in _openings(option, defs, seen)]
    if "const" in node or "enum" in node:
        return []
    kinds = node["type"] if isinstance(node["type"], list) else [node["type"]]
    openings: list[Opening] = []
    if "array" in kinds:
        openings.append(("array", None, None))
    if "object" in kinds:
        required = node.get("required", []) if isinstance(node["type"], str) else []
        if not required:
            openings.append(("object", None, None))
        else:
            first = node["properties"][required[0]]
            values = [first["const"]] if "const" in first else first.get("enum")
            literals = None if values is None else frozenset(json.dumps(v, sort_keys=True) for v in values)
            openings.append(("object", required[0], literals))
    return openings


def _conflict(a: Opening, b: Opening) -> bool:
    """Whether two alternatives' containers can both still match after the first key and its value."""
    if a[0] != b[0]:
        return False
    if a[0] == "array" or a[1] is None or b[1] is None:
        return True
    if a[1] != b[1]:
        return False
    return a[2] is None or b[2] is None or bool(a[2] & b[2])


def _check_unambiguous(root: dict) -> None:
    defs = {container: root.get(container, {}) for container in ("$defs", "definitions")}

    def check(node: dict, path: str) -> None:
        if "anyOf" in node:
            found: list[tuple[int, Opening]] = []
            for index, option in enumerate(node["anyOf"]):
                mine = _openings(option, defs)
                for earlier, theirs in found:
                    for opening in mine:
                        if _conflict(opening, theirs):
                            kind, key, _ = opening
                            what = (
                                "an array"
                                if kind == "array"
                                else (
                                    f'an object starting with "{key}"'
                                    if key
                                    else "an object with no required key"
                                )
                            )
                            raise SchemaRefused(
                                child_path(child_path(path, "anyOf"), index),
                                f"can open {what} where alternative {earlier} can too: the grammar would "
                                "follow both into every nested level; use one array alternative and give "
                                "object alternatives different first required keys (or const values for it)",
                            )
                found += [(index, opening) for opening in mine]
        for child_at, child in _children(node, path):
            check(child, child_at)

    check(root, "")


def _children(node: dict, path: str):
    for keyword in ("anyOf", "prefixItems"):
        for index, child in enumerate(node.get(keyword, [])):
            yield child_path(child_path(path, keyword), index), child
    for keyword in ("items", "additionalProperties"):
        if isinstance(node.get(keyword), dict):
            yield child_path(path, keyword), node[keyword]
    for container in ("properties", "$defs", "definitions"):
        for name, child in node.get(container, {}).items():
            yield child_path(child_path(path, container), name), child

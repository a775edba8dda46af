"""Structured output: a checked JSON schema (runtime/engine/json_schema.py), or "any JSON object", as a
llama.cpp grammar that masks the logits of every step, and the final check of the answer.

The grammar text comes from llama-cpp-python's converter (the module llama_cpp.llama_grammar, a port of
llama.cpp's json_schema_to_grammar), with these flaws corrected, each of which lets an answer
out that does not parse or does not validate:
- its string character rule admits raw control characters (not JSON) and escaped UTF-16 surrogates (which
  make `minLength` count one character as two);
- its literals (enum/const values, property names) do not escape backslashes, so a value holding one
  breaks the grammar or writes a raw newline into a string;
- a user's rule can take the name of a built-in one (a property called "integral part" becomes the rule
  `integral-part`, which every number then uses): the built-in rules are registered first, so a user's
  rule with the same name gets a suffix (and a property named "" no longer takes the start rule's name);
- a `$ref` resolves to whichever rule carries the last segment of its path (possibly a property's rule
  of the same name): each $ref gets a rule of its own.

The llama.cpp grammar sampler (the C library's own) applies the grammar to the logits, so the masking
is the same code llama-server runs. Decoding stays greedy and batch-invariant: the mask depends only on
the sequence's own tokens.
"""

import ctypes
import hashlib
import inspect
import json
import weakref

import llama_cpp
import numpy as np
from jsonschema import Draft202012Validator, FormatChecker
from llama_cpp import llama_grammar
from llama_cpp.llama_grammar import PRIMITIVE_RULES, STRING_FORMAT_RULES, BuiltinRule, SchemaConverter

# A JSON string character: anything but a quote, a backslash or a control character, or an escape that
# is not half of a UTF-16 surrogate pair (so that one grammar character is one decoded character).
_HEX = "[0-9a-fA-F]"
_JSON_CHAR = BuiltinRule(
    r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" ([0-9a-cA-Ce-fE-F] '
    + f"{_HEX} {_HEX} {_HEX} | [dD] [0-7] {_HEX} {_HEX}))",
    [],
)
_LITERAL_ESCAPES = {"\\": "\\\\", "\r": "\\r", "\n": "\\n", '"': '\\"'}

# What decides the grammar for a schema, for the fingerprint: the converter's source and the corrections.
GRAMMAR_ENGINE = {
    "converter_sha256": hashlib.sha256(inspect.getsource(llama_grammar).encode()).hexdigest(),
    "json_char": _JSON_CHAR.content,
    "literal_escapes": _LITERAL_ESCAPES,
    "builtin_rules_first": True,
    "one_rule_per_ref": True,
    "sampler": "llama_sampler_init_grammar, greedy over the allowed tokens",
}

# The grammar of `response_format: {"type": "json_object"}`: any JSON object.
JSON_OBJECT_SCHEMA = {"type": "object"}


class GrammarRefused(ValueError):
    """llama.cpp could not build a grammar from the text (e.g. a $ref cycle that never writes a value)."""


class _Converter(SchemaConverter):
    def __init__(self) -> None:
        super().__init__(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        self._ref_rules: dict[str, str] = {}
        self._root_named = False
        for name, rule in {**PRIMITIVE_RULES, **STRING_FORMAT_RULES}.items():
            self._rules[name] = (_JSON_CHAR if name == "char" else rule).content

    def visit(self, schema: dict, name: str) -> str:
        # The converter names a rule after its path and calls the nameless one "root": a property named
        # "" at the top would take the start rule's name and replace the whole grammar.
        if name == "" and self._root_named:
            name = "empty-name"
        self._root_named = True
        return super().visit(schema, name)

    def _format_literal(self, literal: str) -> str:
        return '"' + "".join(_LITERAL_ESCAPES.get(c, c) for c in literal) + '"'

    def _add_primitive(self, name: str, rule: BuiltinRule) -> str:
        return super()._add_primitive(name, _JSON_CHAR if rule is PRIMITIVE_RULES["char"] else rule)

    def _resolve_ref(self, ref: str) -> str:
        name = self._ref_rules.get(ref)
        if name is None:
            # A placeholder with unique content reserves a unique name before the target is visited, so
            # a recursive reference inside it resolves to this rule.
            name = self._add_rule(f"ref{len(self._ref_rules)}", f"<{ref}>")
            self._ref_rules[ref] = name
            self._rules[name] = self.visit(self._refs[ref], f"{name}-value")
        return name


def grammar_text(schema: dict) -> str:
    """GBNF for a schema checked and normalised by runtime.engine.json_schema.checked_schema."""
    converter = _Converter()
    # The converter rewrites $refs in place: give it a copy.
    resolved = converter.resolve_refs(json.loads(json.dumps(schema)), "")
    # Its resolve_refs does not look inside a node that is a $ref, so a root $ref (a pydantic model that
    # refers to itself) leaves the definitions' own $refs unknown; checked_schema allows only refs of the
    # form #/<container>/<name>, so every one is registered here.
    for container in ("$defs", "definitions"):
        for name, definition in resolved.get(container, {}).items():
            converter._refs.setdefault(f"#/{container}/{name}", definition)
    converter.visit(resolved, "")
    return converter.format_grammar()


# How many of the highest logits are asked about before the whole vocabulary is masked.
_TOP_K = 64
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)
assert _TOKEN_DATA.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)


class GrammarConstraint:
    """One sequence's grammar state: which tokens may come next, and the tokens chosen so far."""

    def __init__(self, vocab: llama_cpp.llama_vocab_p, n_vocab: int, grammar: str):
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
        if not sampler:
            raise GrammarRefused("llama.cpp refused the grammar built from the schema")
        self._sampler = sampler
        self._free = weakref.finalize(self, llama_cpp.llama_sampler_free, sampler)
        self._n_vocab = n_vocab

    def close(self) -> None:
        self._free()

    def _apply(self, candidates: np.ndarray) -> np.ndarray:
        array = llama_cpp.llama_token_data_array(
            data=candidates.ctypes.data_as(llama_cpp.llama_token_data_p),
            size=len(candidates),
            selected=-1,
            sorted=False,
        )
        llama_cpp.llama_sampler_apply(self._sampler, ctypes.byref(array))
        return candidates

    def allows(self, token: int) -> bool:
        candidate = np.zeros(1, dtype=_TOKEN_DATA)
        candidate["id"], candidate["logit"] = token, 0.0
        return bool(np.isfinite(self._apply(candidate)["logit"][0]))

    def best_allowed(self, logits: np.ndarray) -> int:
        """argmax(mask(logits)), usually without masking all 262k tokens: the best allowed token among
        the TOP_K highest is the best allowed overall when its logit is above every logit outside them."""
        top = np.argpartition(logits, -_TOP_K)[-_TOP_K:]
        candidates = np.empty(_TOP_K, dtype=_TOKEN_DATA)
        candidates["id"], candidates["logit"], candidates["p"] = top, logits[top], 0.0
        allowed = self._apply(candidates)["logit"]
        finite = np.isfinite(allowed)
        if finite.any():
            best = allowed[finite].max()
            if best > logits[top].min():  # else a token outside the top ties with it: decide on all
                return int(candidates["id"][allowed == best].min())  # the first index, as argmax
        return int(np.argmax(self.mask(logits)))

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """The logits with every token the grammar does not allow next at -inf."""
        candidates = np.empty(self._n_vocab, dtype=_TOKEN_DATA)
        candidates["id"] = np.arange(self._n_vocab, dtype=np.int32)
        candidates["logit"] = logits
        candidates["p"] = 0.0
        self._apply(candidates)
        masked = np.full(self._n_vocab, -np.inf, dtype=np.float32)
        masked[candidates["id"]] = candidates["logit"]
        if not np.isfinite(masked).any():
            raise RuntimeError("the grammar allows no token at all")
        return masked

    def accept(self, token: int) -> None:
        """Advance past `token`. llama.cpp aborts the whole process on a token the grammar does not
        allow, so that is checked here first and raised as an error of this one request."""
        if not self.allows(token):
            raise RuntimeError(f"token {token} is not allowed by the grammar")
        llama_cpp.llama_sampler_accept(self._sampler, token)


_FORMATS = FormatChecker()


def answer_problem(text: str, schema: dict) -> str | None:
    """Why a finished answer is not a JSON value valid against `schema`; None when it is."""
    try:
        value = json.loads(text)
    except ValueError as error:
        return f"the answer is not JSON ({error})"
    problem = next(iter(Draft202012Validator(schema, format_checker=_FORMATS).iter_errors(value)), None)
    return None if problem is None else f"the answer does not validate: {problem.message}"

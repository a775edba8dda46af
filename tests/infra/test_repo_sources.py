"""The repository files the program reads besides its config (dlp-patterns.json, edge/wrangler.jsonc):
a broken one stops the deploy with a message naming the file and the problem."""

from __future__ import annotations

import json

import pytest

from infra.dlp_patterns import DLP_PATTERNS, DlpPatternError, load_dlp_patterns
from infra.wrangler_config import WranglerConfigError, load_wrangler_config


def write_patterns(tmp_path, change) -> object:
    """The committed dlp-patterns.json with one change applied."""
    document = json.loads(DLP_PATTERNS.read_text())
    change(document)
    path = tmp_path / "dlp-patterns.json"
    path.write_text(json.dumps(document))
    return path


def card(document) -> dict:
    return next(c for c in document["classes"] if c["id"] == "payment_card")


def test_the_committed_patterns_load():
    assert {p.class_id for p in load_dlp_patterns()} == {"us_ssn", "payment_card"}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["classes"].pop(), "classes must be exactly"),
        (lambda d: card(d)["issuers"][0].update(prefixes=["22-2720"]), "bad digit range '22-2720'"),
        (lambda d: card(d)["issuers"][0].update(lengths=[12]), "needs lengths between 13 and 19"),
        (lambda d: card(d).pop("max_digits_after"), "max_digits_after must be a count"),
        (lambda d: d["text"].update(separator_categories=["Space"]), "two-letter Unicode general categories"),
        (lambda d: d["zero_trust"].update(separators=" x"), r"\['U\+0078'\] are not separators"),
        (lambda d: d["zero_trust"].update(digit_zeros="05"), "the zero of each digit script"),
    ],
)
def test_a_broken_pattern_file_is_refused_naming_the_problem(tmp_path, change, problem):
    with pytest.raises(DlpPatternError, match=problem):
        load_dlp_patterns(write_patterns(tmp_path, change))


def test_an_unparsable_pattern_file_names_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(DlpPatternError, match="broken.json is not valid JSON"):
        load_dlp_patterns(broken)


def test_a_broken_wrangler_config_names_the_file(tmp_path):
    path = tmp_path / "wrangler.jsonc"
    path.write_text('{ "name": "x" // no closing brace')
    with pytest.raises(WranglerConfigError, match="wrangler.jsonc is not valid JSONC"):
        load_wrangler_config(path)

"""The repository files the program reads besides its config (dlp-patterns.json, edge/wrangler.jsonc):
a broken one stops the deploy with a message naming the file and the problem."""

from __future__ import annotations

import json

import pytest

from infra.dlp_patterns import DlpPatternError, load_dlp_patterns
from infra.wrangler_config import WranglerConfigError, load_wrangler_config


def write_patterns(tmp_path, patterns) -> object:
    path = tmp_path / "dlp-patterns.json"
    path.write_text(json.dumps({"patterns": patterns}))
    return path


def test_the_committed_patterns_load():
    assert {p.id for p in load_dlp_patterns()} >= {"us_ssn", "payment_card"}


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ({"id": "x", "name": "X", "regex": "a(?=b)"}, "no look-around and back-references"),
        ({"id": "x", "name": "X", "regex": r"(a)\1"}, "no look-around and back-references"),
        ({"id": "x", "name": "X", "regex": "a(", "validation": None}, "invalid regex"),
        ({"id": "x", "name": "X", "regex": "a", "validation": "mod97"}, 'validation must be null or "luhn"'),
        ({"id": "x", "regex": "a"}, "needs string id, name and regex"),
    ],
)
def test_patterns_cloudflare_dlp_would_reject_are_refused(tmp_path, pattern, problem):
    with pytest.raises(DlpPatternError, match=problem):
        load_dlp_patterns(write_patterns(tmp_path, [pattern]))


def test_an_empty_or_broken_pattern_file_is_refused(tmp_path):
    with pytest.raises(DlpPatternError, match="at least one pattern"):
        load_dlp_patterns(write_patterns(tmp_path, []))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(DlpPatternError, match="broken.json is not valid JSON"):
        load_dlp_patterns(broken)


def test_a_broken_wrangler_config_names_the_file(tmp_path):
    path = tmp_path / "wrangler.jsonc"
    path.write_text('{ "name": "x" // no closing brace')
    with pytest.raises(WranglerConfigError, match="wrangler.jsonc is not valid JSONC"):
        load_wrangler_config(path)

"""The committed DLP corpus is what its generator writes, and its labels are right."""

from __future__ import annotations

import json

from infra.dlp_patterns import passes_luhn
from scripts.dlp_corpus import CORPUS, build, render

COMMITTED = json.loads(CORPUS.read_text())

# What the issue asks the corpus to cover, by form name.
REQUIRED_FORMS = {
    "payment_card": {
        "fullwidth_digits", "arabic_indic_digits", "devanagari_digits", "nbsp", "thin_space", "dots",
        "underscores", "touching_letters", "expiry_after", "digits_before", "split_across_messages",
        "split_across_prompt_and_stop", "json_key",
    },
    "us_ssn": {"dashes", "spaces", "no_separator_keyword_before", "split_across_messages", "json_key"},
}  # fmt: skip


def test_the_committed_corpus_is_the_generators_output():
    assert CORPUS.read_text() == render(build()), "run: python -m scripts.dlp_corpus"


def test_it_is_large_enough_and_covers_every_required_form():
    assert len(COMMITTED["positives"]) >= 300 and len(COMMITTED["negatives"]) >= 2000
    for cls, forms in REQUIRED_FORMS.items():
        assert forms <= {case["form"] for case in COMMITTED["positives"] if case["class"] == cls}
    ids = [case["id"] for case in COMMITTED["positives"] + COMMITTED["negatives"]]
    assert len(ids) == len(set(ids))


def test_every_positive_secret_is_a_real_card_or_ssn_and_is_in_the_body():
    for case in COMMITTED["positives"]:
        secret = case["secret"]
        if case["class"] == "payment_card":
            assert 13 <= len(secret) <= 19 and passes_luhn(secret), case["id"]
        else:
            area, group, serial = secret[:3], secret[3:5], secret[5:]
            assert len(secret) == 9 and area not in ("000", "666") and area[0] != "9", case["id"]
            assert group != "00" and serial != "0000", case["id"]
        # The secret's digits are in the body (in any script, any separators, possibly split).
        text = json.dumps(case["body"], ensure_ascii=False)
        digits = "".join(str(int(c)) for c in text if c.isdecimal())
        assert secret in digits, case["id"]

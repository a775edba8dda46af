"""`dlp-patterns.json`: the one definition of what the Worker blocks or redacts, turned here into the
Zero Trust DLP custom entries Gateway enforces.

The Worker's detector (edge/src/admission/dlp-detect.ts) normalises text and reasons about digit groups;
Cloudflare's DLP engine runs one Rust regex per entry (no look-around, bounded repeats only, 1024-byte
matches; the entry's Luhn `validation` is deprecated and not sent). So each entry is generated from the
same facts (issuer prefixes and lengths, SSN ranges and keywords, separators) as the strongest regex
that engine accepts, and `ZERO_TRUST_GAPS` says what it cannot do; docs/dlp.md repeats that list (a test
keeps them equal).
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from infra import REPO_ROOT
from infra.dlp_regex import (
    UnsupportedRegex,
    char_class,
    check_cloudflare_regex,
    digit_class,
    digit_range,
)

DLP_PATTERNS = REPO_ROOT / "dlp-patterns.json"
CLASS_IDS = ("us_ssn", "payment_card")
CARD_LENGTHS = range(13, 20)
MAX_SEPARATOR_RUN = 3  # a "run of separators" in a Zero Trust regex must have a bound
CARD_HEAD = 4  # every card layout starts with a group of 4 digits

ZERO_TRUST_GAPS = (
    "no Luhn check (the entry's validation field is deprecated in provider v5 and not sent): any "
    "card-shaped number with an issuer's prefix matches",
    "no Unicode normalisation: card digits must be ASCII (SSN digits may also be full-width, Arabic-Indic, "
    "Persian or Devanagari), and zero-width or combining characters inside a group hide the number",
    "no joined reading: a number split across chat messages, or across prompt and stop, is missed",
    "cards only in the usual layouts (contiguous, 4-4-4-4 and the others in zero_trust.card_layouts) with "
    "separator runs of at most 3 characters from a fixed list or JSON escapes",
    "other digits beside a card count as one group at most (3 digits before, 4 after): two cards in one "
    "number, or an expiry written as two groups after a card, are missed",
    "an SSN near a keyword must be written 3-2-4 or without separators, and the keyword in ASCII",
    "Gateway scans only traffic from devices enrolled in WARP",
)


class DlpPatternError(ValueError):
    pass


def passes_luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        digit = int(char)
        if i % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return digits != "" and total % 10 == 0


@dataclass(frozen=True)
class DlpPattern:
    """One Zero Trust DLP custom entry: a regex, nothing else (the entry's `validation: luhn` is
    deprecated in provider v5 and not sent, so Gateway has no Luhn check; the Worker has)."""

    id: str
    class_id: str
    name: str
    regex: str

    def finds(self, text: str) -> bool:
        return re.search(self.regex, text) is not None


def _require(condition: bool, path: Path, message: str) -> None:
    if not condition:
        raise DlpPatternError(f"{path}: {message}")


def _require_counts(path: Path, entry: dict, *names: str) -> None:
    """The Worker's rules the regexes cannot express still have to be there for the Worker to read."""
    for name in names:
        value = entry.get(name)
        _require(
            isinstance(value, int) and not isinstance(value, bool) and value >= 0,
            path,
            f"{entry['id']}: {name} must be a count",
        )


def _digit_range(path: Path, text: object, width: int | None = None) -> tuple[str, str]:
    low, _, high = str(text).partition("-")
    high = high or low
    _require(
        isinstance(text, str)
        and low.isascii()
        and low.isdigit()
        and high.isascii()
        and high.isdigit()
        and len(low) == len(high)
        and low <= high
        and (width is None or len(low) == width),
        path,
        f'bad digit range {text!r} (want e.g. "4" or "2221-2720"{f" of {width} digits" if width else ""})',
    )
    return low, high


def _class(document: dict, path: Path, class_id: str) -> dict:
    found = [c for c in document.get("classes", []) if isinstance(c, dict) and c.get("id") == class_id]
    _require(len(found) == 1, path, f"expected exactly one class with id {class_id!r}")
    entry = found[0]
    _require(
        isinstance(entry.get("name"), str) and entry["name"].strip() != "", path, f"{class_id}: needs a name"
    )
    return entry


def _check_text_rules(path: Path, text: object) -> dict:
    _require(isinstance(text, dict), path, '"text" must be an object')
    for key in ("breaks", "separator_characters"):
        _require(isinstance(text.get(key), str), path, f'"text.{key}" must be a string')
    for key in ("ignored_categories", "separator_categories"):
        categories = text.get(key)
        _require(
            isinstance(categories, list) and all(isinstance(c, str) and len(c) == 2 for c in categories),
            path,
            f'"text.{key}" must list two-letter Unicode general categories',
        )
    return text


def _worker_drops_or_separates(text: dict, char: str) -> bool:
    category = unicodedata.category(char)
    return (
        category in text["separator_categories"]
        or category in text["ignored_categories"]
        or char in text["separator_characters"]
    ) and char not in text["breaks"]


def _separators(path: Path, document: dict, text: dict) -> str:
    zero_trust = document.get("zero_trust")
    _require(isinstance(zero_trust, dict), path, '"zero_trust" must be an object')
    separators = zero_trust.get("separators")
    _require(
        isinstance(separators, str) and separators != "", path, '"zero_trust.separators" must be a string'
    )
    stray = [f"U+{ord(c):04X}" for c in separators if not _worker_drops_or_separates(text, c)]
    _require(not stray, path, f"zero_trust.separators {stray} are not separators or ignored in the Worker")
    return separators


# A JSON-escaped character (\u00a0, as Python's json.dumps sends NBSP) counts as a separator too.
JSON_ESCAPE = "\\\\u[0-9a-fA-F]{4}"


def _separator(characters: str) -> str:
    return f"(?:{char_class(characters)}|{JSON_ESCAPE})"


def _digit_zeros(path: Path, document: dict) -> str:
    zeros = document["zero_trust"].get("digit_zeros")
    _require(
        isinstance(zeros, str)
        and zeros.startswith("0")
        and all(
            unicodedata.decimal(z, None) == 0 and unicodedata.decimal(chr(ord(z) + 9), None) == 9
            for z in zeros
        ),
        path,
        '"zero_trust.digit_zeros" must list the zero of each digit script, ASCII "0" first',
    )
    return zeros


def _card_layouts(path: Path, card: dict, zero_trust: dict) -> dict[int, list[tuple[int, ...]]]:
    """Group sizes per card length: 4-4-4-... (the last group shorter) plus zero_trust.card_layouts."""
    extra = zero_trust.get("card_layouts")
    _require(
        isinstance(extra, list) and all(isinstance(layout, list) and layout for layout in extra),
        path,
        '"zero_trust.card_layouts" must list group sizes, e.g. [4, 6, 5]',
    )
    low, high = card["min_group_digits"], card["max_group_digits"]
    layouts: dict[int, list[tuple[int, ...]]] = {}
    for length in CARD_LENGTHS:
        fours = (4,) * ((length - 1) // 4) + (length - 4 * ((length - 1) // 4),)
        layouts[length] = [fours] + [tuple(layout) for layout in extra if sum(layout) == length]
    for layout in extra:
        # A layout the Worker would not accept would make Gateway block what the edge lets through.
        _require(
            sum(layout) in CARD_LENGTHS
            and layout[0] == CARD_HEAD
            and all(low <= g <= high for g in layout[:-1]),
            path,
            f"zero_trust.card_layouts: {layout} is not a card layout the Worker accepts",
        )
    return layouts


def _card_pattern(path: Path, card: dict, zero_trust: dict, separators: str) -> DlpPattern:
    issuers = card.get("issuers")
    _require(isinstance(issuers, list) and issuers != [], path, "payment_card: needs a list of issuers")
    _require(
        isinstance(card.get("not_after"), str) and len(card["not_after"]) == 1,
        path,
        "payment_card: not_after",
    )
    _require_counts(
        path, card, "min_group_digits", "max_group_digits", "max_digits_before", "max_digits_after"
    )
    layouts = _card_layouts(path, card, zero_trust)
    ascii_digit = digit_class("0")
    # Every layout starts with a group of CARD_HEAD digits, the issuer prefix inside it. One branch per
    # length, longest first: (?:heads issued at 15 digits)(?:[0-9]{11}|S[0-9]{6}S[0-9]{5}|...).
    heads: dict[int, list[str]] = {}
    for issuer in issuers:
        lengths = issuer.get("lengths") if isinstance(issuer, dict) else None
        _require(
            isinstance(lengths, list) and lengths != [] and all(n in CARD_LENGTHS for n in lengths),
            path,
            f"payment_card: issuer {issuer!r} needs lengths between 13 and 19",
        )
        _require(
            isinstance(issuer.get("prefixes"), list) and issuer["prefixes"] != [], path, "issuer prefixes"
        )
        for prefix in issuer["prefixes"]:
            low, high = _digit_range(path, prefix)
            _require(len(low) <= CARD_HEAD, path, f"payment_card: prefix {prefix} is longer than {CARD_HEAD}")
            rest = CARD_HEAD - len(low)
            head = digit_range(low, high, ascii_digit) + (f"[0-9]{{{rest}}}" if rest else "")
            for length in lengths:
                heads.setdefault(length, []).append(head)
    separator = _separator(separators)
    gap = f"{separator}{{1,{MAX_SEPARATOR_RUN}}}"

    def grouped(sizes: tuple[int, ...]) -> str:
        """S[0-9]{4}S[0-9]{4}S[0-9]{4} as (?:S[0-9]{4}){3}: the separator class is long."""
        runs = [(size, len(list(same))) for size, same in itertools.groupby(sizes)]
        return "".join(
            f"(?:{gap}[0-9]{{{size}}}){{{count}}}" if count > 1 else f"{gap}[0-9]{{{size}}}"
            for size, count in runs
        )

    def tails(length: int) -> str:
        contiguous = f"[0-9]{{{length - CARD_HEAD}}}"
        return "|".join([contiguous, *(grouped(layout[1:]) for layout in layouts[length])])

    alternatives = [f"(?:{'|'.join(heads[n])})(?:{tails(n)})" for n in sorted(heads, reverse=True)]
    # Around the card, as in the Worker: at most max_digits_before digits before it in the same number
    # and max_digits_after after it ("#12 <card> 12/25"), no "+" right before it (E.164), and no lone dot
    # on either side (a decimal point). These digits are part of the match: no Luhn check to spoil.
    quiet = char_class("0123456789" + separators, negate=True)  # neither digit nor separator
    no_dot = _separator(separators.replace(".", ""))
    run = f"(?:{no_dot}{separator}{{0,{MAX_SEPARATOR_RUN - 1}}}|\\.{separator}{{1,{MAX_SEPARATOR_RUN - 1}}})"
    edge = f"(?:$|{quiet}|{separator}{{1,{MAX_SEPARATOR_RUN}}}(?:$|{quiet}))"
    before, after = card["max_digits_before"], card["max_digits_after"]
    start = (
        f"(?:^|{char_class('0123456789.' + separators + card['not_after'], negate=True)}"
        f"|(?:^|{quiet}){separator}{{1,{MAX_SEPARATOR_RUN}}}|(?:^|[^0-9])[0-9]{{1,{before}}}{run})"
    )
    end = f"(?:{edge}|{run}[0-9]{{1,{after}}}{edge})"
    regex = f"{start}(?:{'|'.join(alternatives)}){end}"
    return DlpPattern("payment_card", "payment_card", card["name"], regex)


def _ssn_patterns(path: Path, ssn: dict, separator: str, zeros: str) -> tuple[DlpPattern, DlpPattern]:
    _require_counts(path, ssn, "max_digits_before", "max_digits_after")
    fields = ssn.get("fields")
    _require(
        isinstance(fields, list) and len(fields) == 3 and all(isinstance(f, dict) for f in fields),
        path,
        "us_ssn: needs three fields (area, group, serial)",
    )
    digit = digit_class(zeros)
    parts = []
    for field in fields:
        width = field.get("digits")
        _require(isinstance(width, int) and width > 0, path, "us_ssn: every field needs digits")
        ranges = field.get("ranges")
        _require(isinstance(ranges, list) and ranges != [], path, "us_ssn: every field needs ranges")
        alternatives = [digit_range(*_digit_range(path, r, width), digit) for r in ranges]
        parts.append(alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})")
    context = ssn.get("context")
    _require(
        isinstance(context, dict)
        and isinstance(context.get("keywords"), list)
        and context["keywords"] != []
        and all(isinstance(k, str) and k == k.lower() and k.strip() == k for k in context["keywords"])
        and isinstance(context.get("distance"), int),
        path,
        "us_ssn: context needs lower-case keywords and a distance",
    )
    any_digit = char_class(chr(ord(z) + v) for z in zeros for v in range(10))
    not_digit = any_digit.replace("[", "[^", 1)
    gap = separator
    start, end = f"(?:^|{not_digit})", f"(?:{not_digit}|$)"
    some, maybe = f"{gap}{{1,{MAX_SEPARATOR_RUN}}}", f"{gap}{{0,{MAX_SEPARATOR_RUN}}}"
    formatted = f"{start}{parts[0]}{some}{parts[1]}{some}{parts[2]}{end}"
    bare = f"{parts[0]}{maybe}{parts[1]}{maybe}{parts[2]}"
    keywords = "|".join(
        keyword.replace(" ", some) for keyword in sorted(context["keywords"], key=len, reverse=True)
    )
    near = f"[^0-9]{{0,{context['distance']}}}"
    keyword_regex = f"(?i:{keywords}){near}{bare}{end}|{start}{bare}{near}(?i:{keywords})"
    return (
        DlpPattern("us_ssn", "us_ssn", ssn["name"], formatted),
        DlpPattern("us_ssn_near_keyword", "us_ssn", f"{ssn['name']} (near a keyword)", keyword_regex),
    )


def load_dlp_definitions(path: Path = DLP_PATTERNS) -> dict:
    try:
        document = json.loads(path.read_text())
    except ValueError as error:
        raise DlpPatternError(f"{path} is not valid JSON: {error}") from None
    _require(
        isinstance(document, dict) and isinstance(document.get("classes"), list),
        path,
        'expected {"classes": [...]}',
    )
    ids = [c.get("id") for c in document["classes"] if isinstance(c, dict)]
    _require(sorted(ids) == sorted(CLASS_IDS), path, f"classes must be exactly {list(CLASS_IDS)}, got {ids}")
    _check_text_rules(path, document.get("text"))
    return document


def load_dlp_patterns(path: Path = DLP_PATTERNS) -> tuple[DlpPattern, ...]:
    """The Zero Trust entries for the classes in `path`; raises DlpPatternError naming the problem."""
    document = load_dlp_definitions(path)
    separators = _separators(path, document, document["text"])
    zeros = _digit_zeros(path, document)
    patterns = (
        *_ssn_patterns(path, _class(document, path, "us_ssn"), _separator(separators), zeros),
        _card_pattern(path, _class(document, path, "payment_card"), document["zero_trust"], separators),
    )
    for pattern in patterns:
        try:
            check_cloudflare_regex(pattern.regex)
        except UnsupportedRegex as error:
            raise DlpPatternError(f"{path}: generated entry {pattern.id}: {error}") from None
    return patterns

"""The labelled DLP corpus: card numbers and SSNs written the ways people paste them (positives) and
ordinary digit-heavy text that must pass (negatives). Deterministic: a fixed seed, no clock, no I/O but
the output file, so `python -m scripts.dlp_corpus` rewrites exactly the committed
tests/fixtures/dlp/corpus.json (tests/infra/test_dlp_corpus.py checks that it does).

Each case is a request body as a client sends it, with the route it is sent to; positives also carry the
class and the ASCII digits of the secret (so a test can prove none of them survives redaction).
"""

from __future__ import annotations

import json
import random
import string
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "dlp" / "corpus.json"
SEED = 20260601

# -- writing numbers -------------------------------------------------------------------------------------

DIGIT_SCRIPTS = {  # the zero of each decimal digit script used below
    "fullwidth_digits": 0xFF10,
    "arabic_indic_digits": 0x0660,
    "persian_digits": 0x06F0,
    "devanagari_digits": 0x0966,
    "bengali_digits": 0x09E6,
    "thai_digits": 0x0E50,
    "math_bold_digits": 0x1D7CE,
}

SEPARATORS = {
    "spaces": " ",
    "dashes": "-",
    "dots": ".",
    "underscores": "_",
    "nbsp": "\u00a0",
    "narrow_nbsp": "\u202f",
    "thin_space": "\u2009",
    "figure_space": "\u2007",
    "ideographic_space": "\u3000",
    "en_dash": "\u2013",
    "em_dash": "\u2014",
    "minus_sign": "\u2212",
    "non_breaking_hyphen": "\u2011",
    "fullwidth_hyphen": "\uff0d",
    "middle_dot": "\u00b7",
    "separator_runs": " - ",
    "double_dash": "--",
}

INVISIBLES = {
    "zero_width_space": "\u200b",
    "soft_hyphen": "\u00ad",
    "word_joiner": "\u2060",
    "byte_order_mark": "\ufeff",
    "zero_width_joiner": "\u200d",
}


def luhn_complete(rng: random.Random, prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, char in enumerate(reversed(body)):
        digit = int(char)
        if i % 2 == 0:  # these become the odd positions once the check digit is appended
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return body + str((10 - total % 10) % 10)


CARD_NETWORKS = [  # (network, prefix choices, length, grouping)
    ("visa", ["4"], 16, (4, 4, 4, 4)),
    ("visa13", ["4"], 13, (4, 4, 5)),
    ("visa19", ["4"], 19, (4, 4, 4, 4, 3)),
    ("mastercard", ["51", "52", "53", "54", "55"], 16, (4, 4, 4, 4)),
    ("mastercard2", ["2221", "2300", "2500", "2720"], 16, (4, 4, 4, 4)),
    ("amex", ["34", "37"], 15, (4, 6, 5)),
    ("discover", ["6011", "644", "65"], 16, (4, 4, 4, 4)),
    ("jcb", ["3528", "3530", "3589"], 16, (4, 4, 4, 4)),
    ("diners", ["36", "300", "305"], 14, (4, 6, 4)),
    ("unionpay", ["62"], 16, (4, 4, 4, 4)),
    ("unionpay19", ["62"], 19, (4, 4, 4, 4, 3)),
    ("maestro", ["5018", "6304", "6759"], 16, (4, 4, 4, 4)),
    ("mir", ["2200", "2204"], 16, (4, 4, 4, 4)),
    ("rupay", ["60", "81"], 16, (4, 4, 4, 4)),
    ("troy", ["9792"], 16, (4, 4, 4, 4)),
    ("uatp", ["1"], 15, (4, 5, 6)),
]
WELL_KNOWN_TEST_CARDS = [
    "4111111111111111",
    "4242424242424242",
    "5500000000000004",
    "5555555555554444",
    "378282246310005",
    "6011111111111117",
    "3530111333300000",
    "30569309025904",
    "4222222222222",
    "6200000000000005",
]


def group(digits: str, sizes: tuple[int, ...]) -> list[str]:
    parts, at = [], 0
    for size in sizes:
        parts.append(digits[at : at + size])
        at += size
    if at < len(digits):
        parts.append(digits[at:])
    return [p for p in parts if p]


def in_script(text: str, zero: int) -> str:
    return "".join(chr(zero + int(c)) if c.isascii() and c.isdigit() else c for c in text)


# -- templates -------------------------------------------------------------------------------------------

CARD_SENTENCES = [
    "Please charge my card {n} for the order.",
    "Card number: {n}",
    "My visa is {n}, can you check why it was declined?",
    "Use {n} for the subscription renewal.",
    "{n}",
    "The customer's card ({n}) was charged twice.",
    "Here is the card I used: {n} thanks",
    "Refund to card {n} please.",
    "cc {n} exp soon",
    "Payment details - card {n} - billing zip 94103",
]
SSN_SENTENCES = [
    "My social security number is {n}.",
    "SSN: {n}",
    "Employee SSN {n} needs to be updated in payroll.",
    "Can you check if {n} is a valid ssn format?",
    "ssn {n}",
    "Applicant: Jane Doe, SSN {n}, DOB 1984.",
    "Social Security Number - {n}",
    "Her SS# is {n}",
]
SSN_NEUTRAL_SENTENCES = [  # structured forms need no keyword
    "Please file this under {n} before Friday.",
    "{n}",
    "The form lists {n} in box 3.",
    "Number on the letter: {n}",
]


class Corpus:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.positives: list[dict] = []
        self.negatives: list[dict] = []

    def positive(self, cls: str, form: str, route: str, body: dict, secret: str) -> None:
        case_id = (
            f"{cls}-{form}-{sum(1 for p in self.positives if p['form'] == form and p['class'] == cls):03d}"
        )
        self.positives.append(
            {"id": case_id, "class": cls, "form": form, "route": route, "secret": secret, "body": body}
        )

    def negative(self, form: str, route: str, body: dict) -> None:
        case_id = f"negative-{form}-{sum(1 for n in self.negatives if n['form'] == form):04d}"
        self.negatives.append({"id": case_id, "form": form, "route": route, "body": body})

    def pick(self, items):
        return self.rng.choice(items)


def text_body(corpus: Corpus, text: str) -> tuple[str, dict]:
    """A single text in one of the routes' shapes."""
    shape = corpus.rng.randrange(5)
    if shape == 0:
        return "/v1/chat/completions", {"messages": [{"role": "user", "content": text}]}
    if shape == 1:
        return "/v1/completions", {"prompt": text, "max_tokens": 16}
    if shape == 2:
        return "/v1/embed", {"input": text}
    if shape == 3:
        return "/v1/chat/completions", {
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": text},
            ]
        }
    return "/v1/generate", {"prompt": text, "max_tokens": 32}


def random_card(corpus: Corpus) -> tuple[str, tuple[int, ...]]:
    _name, prefixes, length, sizes = corpus.pick(CARD_NETWORKS)
    return luhn_complete(corpus.rng, corpus.pick(prefixes), length), sizes


def card_positives(corpus: Corpus) -> None:
    rng = corpus.rng

    def add(form: str, text_of: Callable[[str, tuple[int, ...]], str], count: int) -> None:
        for i in range(count):
            digits, sizes = random_card(corpus)
            if i < 2 and form in ("plain", "spaces"):
                digits = WELL_KNOWN_TEST_CARDS[rng.randrange(len(WELL_KNOWN_TEST_CARDS))]
                sizes = {16: (4, 4, 4, 4), 15: (4, 6, 5), 14: (4, 6, 4), 13: (4, 4, 5)}[len(digits)]
            route, body = text_body(corpus, corpus.pick(CARD_SENTENCES).format(n=text_of(digits, sizes)))
            corpus.positive("payment_card", form, route, body, digits)

    add("plain", lambda d, s: d, 10)
    for form, sep in SEPARATORS.items():
        add(form, lambda d, s, sep=sep: sep.join(group(d, s)), 6)
    for form, mark in INVISIBLES.items():
        add(form, lambda d, s, mark=mark: mark.join(d), 3)
        add(f"{form}_between_groups", lambda d, s, mark=mark: f" {mark}".join(group(d, s)), 2)
    for form, zero in DIGIT_SCRIPTS.items():
        add(form, lambda d, s, zero=zero: in_script(" ".join(group(d, s)), zero), 4)
        add(f"{form}_contiguous", lambda d, s, zero=zero: in_script(d, zero), 2)
    add("fullwidth_ideographic_space", lambda d, s: in_script("\u3000".join(group(d, s)), 0xFF10), 3)
    add(
        "mixed_digit_scripts",
        lambda d, s: "".join(in_script(c, rng.choice([0x30, 0xFF10, 0x0660])) for c in d),
        4,
    )
    add("combining_underline", lambda d, s: "".join(c + "\u0332" for c in d), 3)
    add("keycap_digits", lambda d, s: "".join(c + "\ufe0f\u20e3" for c in d), 2)
    touching = [
        lambda t: f"pan{t}",
        lambda t: f"CC{t}X",
        lambda t: f"visa:{t}end",
        lambda t: f"card#{t}",
        lambda t: f"num{t}exp",
        lambda t: f"x{t}y",
    ]
    add("touching_letters", lambda d, s: corpus.pick(touching)(d), 8)
    add("touching_letters_grouped", lambda d, s: corpus.pick(touching)("-".join(group(d, s))), 6)
    expiry = [
        lambda t: f"{t} 12/25",
        lambda t: f"{t} 12/2027",
        lambda t: f"{t} exp 09/26 cvv 123",
        lambda t: f"{t} 1226",
        lambda t: f"{t} 123",
        lambda t: f"{t} 07 28",
        lambda t: f"{t}-12/25",
    ]
    add("expiry_after", lambda d, s: corpus.pick(expiry)(" ".join(group(d, s))), 10)
    add("expiry_after_contiguous", lambda d, s: corpus.pick(expiry)(d), 6)
    before = [
        lambda t: f"ref 42 {t}",
        lambda t: f"1. {t}",
        lambda t: f"00 {t}",
        lambda t: f"#12 {t}",
        lambda t: f"No. 3 {t}",
        lambda t: f"item 7 - {t}",
    ]
    add("digits_before", lambda d, s: corpus.pick(before)(" ".join(group(d, s))), 10)
    # At most 4 digits around the card in the same number (docs/dlp.md): "#12 <card> 12/25".
    add(
        "digits_before_and_after",
        lambda d, s: f"#{rng.randrange(10, 99)} {'.'.join(group(d, s))} {rng.randrange(1, 13):02d}/27",
        6,
    )
    add("two_cards_in_one_number", lambda d, s: f"{d} {luhn_complete(rng, '51', 16)}", 3)
    add(
        "csv_row",
        lambda d, s: (
            f"id,card,exp\n{rng.randrange(1, 99)},{d},{rng.randrange(1, 13):02d}/{rng.randrange(25, 31)}"
        ),
        3,
    )
    add("own_line", lambda d, s: f"Billing\nName: Sam Lee\nCard: {' '.join(group(d, s))}\nExp: 01/27", 4)

    for i in range(10):  # split across chat messages: at a group boundary, inside a group, three ways
        digits, sizes = random_card(corpus)
        parts = group(digits, sizes)
        if i % 3 == 0:
            pieces = [" ".join(parts[:2]), " ".join(parts[2:])]
        elif i % 3 == 1:
            cut = rng.randrange(3, len(digits) - 3)
            pieces = [digits[:cut], digits[cut:]]
        else:
            pieces = [parts[0], " ".join(parts[1:-1]), parts[-1]]
        messages = [{"role": "user", "content": f"my card is {pieces[0]}"}]
        messages += [{"role": "user", "content": piece} for piece in pieces[1:]]
        corpus.positive(
            "payment_card", "split_across_messages", "/v1/chat/completions", {"messages": messages}, digits
        )
    for i in range(6):  # split inside a group, one or two digits from its edge
        digits, sizes = random_card(corpus)
        grouped = " ".join(group(digits, sizes))
        cut = [1, 2, len(grouped) - 1, len(grouped) - 2, 6, 11][i]
        if grouped[cut - 1] == " " or grouped[cut] == " ":
            cut += 1
        messages = [
            {"role": "user", "content": f"card {grouped[:cut]}"},
            {"role": "user", "content": grouped[cut:]},
        ]
        corpus.positive(
            "payment_card", "split_inside_a_group", "/v1/chat/completions", {"messages": messages}, digits
        )
    for _ in range(3):
        digits, sizes = random_card(corpus)
        parts = group(digits, sizes)
        content = [
            {"type": "text", "text": f"card {parts[0]}"},
            {"type": "text", "text": " ".join(parts[1:])},
        ]
        body = {"messages": [{"role": "user", "content": content}]}
        corpus.positive("payment_card", "split_across_content_parts", "/v1/chat/completions", body, digits)
    for i in range(6):
        digits, sizes = random_card(corpus)
        parts = group(digits, sizes)
        stop = " ".join(parts[2:]) if i % 2 else [" ".join(parts[2:]), "\n\n"]
        body = {"prompt": f"Repeat after me: {' '.join(parts[:2])}", "stop": stop, "max_tokens": 16}
        corpus.positive(
            "payment_card",
            "split_across_prompt_and_stop",
            corpus.pick(["/v1/generate", "/v1/completions"]),
            body,
            digits,
        )

    for i in range(12):  # object keys: top level on the OpenAI routes, nested anywhere
        digits, sizes = random_card(corpus)
        key = [digits, " ".join(group(digits, sizes)), in_script(digits, 0xFF10)][i % 3]
        if i % 4 == 0:
            route, body = "/v1/completions", {"prompt": "Say hi.", key: True}
        elif i % 4 == 1:
            route, body = (
                "/v1/chat/completions",
                {"messages": [{"role": "user", "content": "hi"}], "metadata": {key: "x"}},
            )
        elif i % 4 == 2:
            route, body = "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi", key: 1}]}
        else:
            route, body = "/v1/generate", {"prompt": "hello", "logit_bias": {key: 5}}
        corpus.positive("payment_card", "json_key", route, body, digits)
    for _ in range(4):
        digits = luhn_complete(rng, corpus.pick(["4", "51", "6011"]), 16)
        corpus.positive(
            "payment_card",
            "json_number_value",
            "/v1/completions",
            {"prompt": "hi", "card": int(digits)},
            digits,
        )
    for form, place in (
        ("in_stop", lambda t: ("/v1/generate", {"prompt": "List the planets.", "stop": [t]})),
        ("in_embedding_input", lambda t: ("/v1/embeddings", {"input": ["first document", f"paid with {t}"]})),
        (
            "in_user_field",
            lambda t: ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "user": t}),
        ),
        (
            "in_message_name",
            lambda t: ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi", "name": t}]}),
        ),
        ("in_model_field", lambda t: ("/v1/completions", {"prompt": "hi", "model": f"card-{t}"})),
    ):
        for _ in range(3):
            digits, sizes = random_card(corpus)
            route, body = place(" ".join(group(digits, sizes)))
            corpus.positive("payment_card", form, route, body, digits)


def random_ssn(rng: random.Random) -> str:
    while True:
        area = rng.randrange(1, 900)
        if area != 666:
            return f"{area:03d}{rng.randrange(1, 100):02d}{rng.randrange(1, 10000):04d}"


def ssn_positives(corpus: Corpus) -> None:
    rng = corpus.rng

    def add(form: str, text_of: Callable[[str], str], count: int, sentences=SSN_NEUTRAL_SENTENCES) -> None:
        for _ in range(count):
            digits = random_ssn(rng)
            route, body = text_body(corpus, corpus.pick(sentences).format(n=text_of(digits)))
            corpus.positive("us_ssn", form, route, body, digits)

    dashed = lambda d, sep="-": f"{d[:3]}{sep}{d[3:5]}{sep}{d[5:]}"  # noqa: E731
    add("dashes", dashed, 8)
    add("dashes_with_keyword", dashed, 4, SSN_SENTENCES)
    for form in (
        "spaces",
        "dots",
        "underscores",
        "nbsp",
        "thin_space",
        "en_dash",
        "minus_sign",
        "fullwidth_hyphen",
        "separator_runs",
    ):
        add(form, lambda d, sep=SEPARATORS[form]: dashed(d, sep), 4)
    add("no_separator_keyword_before", lambda d: d, 10, SSN_SENTENCES)
    after = ["{n} is my SSN", "{n} (social security number)", "I think {n} was her ssn.", "{n} <- SSN"]
    add("no_separator_keyword_after", lambda d: d, 6, after)
    add("three_three_three_keyword", lambda d: f"{d[:3]} {d[3:6]} {d[6:]}", 5, SSN_SENTENCES)
    add("touching_keyword", lambda d: d, 5, ["SSN{n}", "ssn:{n}", "SSN#{n}", "ss#{n}", "(SSN){n}"])
    add("touching_letters", lambda d: f"id{dashed(d)}x", 4)
    add("touching_keyword_dashed", lambda d: f"SSN{dashed(d)}", 4)
    for form, zero in (
        ("fullwidth_digits", 0xFF10),
        ("arabic_indic_digits", 0x0660),
        ("devanagari_digits", 0x0966),
        ("persian_digits", 0x06F0),
    ):
        add(form, lambda d, zero=zero: in_script(dashed(d), zero), 4)
        add(f"{form}_keyword", lambda d, zero=zero: in_script(d, zero), 2, SSN_SENTENCES)
    add("fullwidth_keyword", lambda d: "\uff33\uff33\uff2e " + in_script(d, 0xFF10), 3, ["{n}"])
    add("zero_width", lambda d: "\u200b".join(dashed(d)), 4)
    add("soft_hyphen_keyword", lambda d: "\u00ad".join(d), 3, SSN_SENTENCES)
    add("date_after", lambda d: f"{dashed(d)} 01/02/1980", 4)
    add("digits_before", lambda d: f"2 {dashed(d)}", 3)
    for i in range(8):
        digits = random_ssn(rng)
        if i % 2:
            messages = [{"role": "user", "content": "here is my ssn"}, {"role": "user", "content": digits}]
        else:
            messages = [
                {"role": "user", "content": f"number {digits[:3]}-{digits[3:5]}"},
                {"role": "user", "content": digits[5:]},
            ]
        corpus.positive(
            "us_ssn", "split_across_messages", "/v1/chat/completions", {"messages": messages}, digits
        )
    for _ in range(3):
        digits = random_ssn(rng)
        body = {"prompt": f"ssn {digits[:3]}-{digits[3:5]}-", "stop": [digits[5:]]}
        corpus.positive("us_ssn", "split_across_prompt_and_stop", "/v1/generate", body, digits)
    for i in range(6):
        digits = random_ssn(rng)
        key = dashed(digits) if i % 2 else f"ssn {digits}"
        body = [
            {"prompt": "hello", key: 1},
            {"messages": [{"role": "user", "content": "hi"}], "metadata": {key: True}},
            {"messages": [{"role": "user", "content": "hi", key: "x"}]},
        ][i % 3]
        corpus.positive(
            "us_ssn",
            "json_key",
            "/v1/completions" if "prompt" in body else "/v1/chat/completions",
            body,
            digits,
        )
    for _ in range(3):
        digits = random_ssn(rng)
        corpus.positive(
            "us_ssn", "in_embedding_input", "/v1/embed", {"input": ["a", f"SSN {dashed(digits)}"]}, digits
        )


# -- negatives ---------------------------------------------------------------------------------------------

WORDS = [
    "report",
    "team",
    "meeting",
    "budget",
    "quarter",
    "project",
    "customer",
    "server",
    "update",
    "review",
]
WORDS += [
    "plan",
    "release",
    "design",
    "issue",
    "ticket",
    "order",
    "invoice",
    "shipment",
    "warehouse",
    "agenda",
]
NAMES = ["Alice", "Bob", "Carol", "Dmitri", "Eun-ji", "Farah", "Gustavo", "Hiroshi", "Ines", "Jamal"]
CITIES = ["Berlin", "Lagos", "Osaka", "Lima", "Toronto", "Pune", "Lyon", "Austin", "Cairo", "Perth"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October"]


def fill(rng: random.Random, template: str) -> str:
    """A template with random parts: {10-99} a number in that range, {1-12:02} zero-padded, {d8} eight
    digits, {x12} hex, {A3} capitals, {a|b|c} one of these, {word} {name} {city} {month}; {{ }} braces."""

    def part(spec: str) -> str:
        if "{" in spec:
            raise ValueError(f"nested placeholder in {template!r}")
        if "|" in spec:
            return rng.choice(spec.split("|"))
        if spec in ("word", "name", "city", "month"):
            return rng.choice({"word": WORDS, "name": NAMES, "city": CITIES, "month": MONTHS}[spec])
        kind, count = spec[0], spec[1:]
        if kind in "dxA" and count.isdigit():
            alphabet = {"d": string.digits, "x": "0123456789abcdef", "A": string.ascii_uppercase}[kind]
            return "".join(rng.choice(alphabet) for _ in range(int(count)))
        bounds, _, width = spec.partition(":")
        low, high = (int(n.replace("_", "")) for n in bounds.split("-"))
        return format(rng.randrange(low, high + 1), width)

    out, at = [], 0
    while at < len(template):  # scanned like str.format: {{ and }} are braces, {spec} a random part
        if template.startswith(("{{", "}}"), at):
            out.append(template[at])
            at += 2
        elif template[at] == "{":
            end = template.index("}", at)
            out.append(part(template[at + 1 : end]))
            at = end + 1
        else:
            out.append(template[at])
            at += 1
    return "".join(out)


def family(rng: random.Random, templates: list[str], wrappers: list[str] | None = None) -> Iterator[str]:
    """Texts from templates; a wrapper ("Call me at {}.") may hold one to three of them."""
    while True:
        if not wrappers:
            yield fill(rng, rng.choice(templates))
            continue
        wrapper = rng.choice(wrappers)
        yield wrapper.format(*(fill(rng, rng.choice(templates)) for _ in range(wrapper.count("{}"))))


PROSE = [
    "{name} said the {word} for Q{1-4} is {1-99}% over plan, about {1-999}k more than {1950-2030}.",
    "We shipped {2-5000} units to {city} on {1-28} {month}; {1-900} are still in the {word}.",
    "The {word} meeting moved from room {100-999} to {100-999} at {0-23}:{0-59:02}.",
    "In {1950-2030}, {name} ran {2-50} miles in {1-9} hours and {0-59:02} minutes.",
    "Chapter {1-40}, page {1-800}: the {word} and the {word}.",
    "Between {1950-2030} and {1950-2030} {city} grew from {1-999},{0-999:03} to {1-999},{0-999:03}.",
    "Please read sections {1-9}.{0-9} and {1-9}.{0-9} before the {word} on the {1-28}th.",
    "{name} has {2-5000} tickets open; {1-900} of them are about the {word}.",
    "It took {2-5000} seconds to {word} {1-900} files ({1-4000} MB).",
    "The recipe needs {1-9} cups of flour, {1-9} eggs and {1-9}00 g of sugar at {160|180|200|220} degrees.",
    "Flight {LH|BA|UA|NH|QF}{1-9999} leaves {city} at {0-23}:{0-59:02} from gate {A|B|C|D}{1-60}.",
    "My {word} score went from {10-99} to {10-99} after {2-30} weeks.",
    "Room {100-999}, floor {1-40}, building {1-9}.",
    "We need {2-5000} more {word}s by {month} {1-28}, {1950-2030}.",
    "Call me back in {1-90} minutes, I'm on the {word} call with {name}.",
]
PHONES = [
    "({201-989}) {d3}-{d4}",
    "{201-989}-{d3}-{d4}",
    "{201-989}.{d3}.{d4}",
    "+1 {201-989} {d3} {d4}",
    "+1-{201-989}-{d3}-{d4}",
    "1-800-{d3}-{d4}",
    "+44 20 {d4} {d4}",
    "+44 7{d3} {d6}",
    "020 {d4} {d4}",
    "+49 30 {d8}",
    "+49 1{5|6|7}{d1} {d8}",
    "+49 (0)30 {d3} {d4}",
    "0049 1{5|6|7}{d2} {d7}",
    "030 {d3} {d2} {d2}",
    "+33 6 {d2} {d2} {d2} {d2}",
    "01 {d2} {d2} {d2} {d2}",
    "+34 6{d2} {d3} {d3}",
    "+39 3{d2} {d3} {d4}",
    "+31 6 {d8}",
    "+43 664 {d7}",
    "+41 79 {d3} {d2} {d2}",
    "+46 70-{d3} {d2} {d2}",
    "+48 {d3} {d3} {d3}",
    "+7 9{d2} {d3}-{d2}-{d2}",
    "+86 1{3|5|8|9}{d1} {d4} {d4}",
    "+86 10 {d4} {d4}",
    "+91 9{d4} {d5}",
    "+91-{d5}-{d5}",
    "+81 90-{d4}-{d4}",
    "+81 3-{d4}-{d4}",
    "+82 10-{d4}-{d4}",
    "+61 4{d2} {d3} {d3}",
    "+61 2 {d4} {d4}",
    "+55 11 9{d4}-{d4}",
    "+52 1 55 {d4} {d4}",
    "+54 9 11 {d4}-{d4}",
    "+62 812-{d4}-{d4}",
    "+63 917 {d3} {d4}",
    "+234 803 {d3} {d4}",
    "+27 82 {d3} {d4}",
    "+971 50 {d3} {d4}",
    "+90 5{d2} {d3} {d2} {d2}",
    "+880 1{d3}-{d6}",
    "+353 87 {d3} {d4}",
    "+1 ({201-989}) {d3}-{d4} ext. {d3}",
    "tel:+{1|44|49|33}{d10}",
    "{d3} {d3} {d4}",
    "0{d3} {d7}",
]
PHONE_TEXTS = [
    "Call me at {}.",
    "Phone: {}",
    "Our support line is {} (Mon-Fri).",
    "{}",
    "Mobile {} / office {}",
    "Reach the office on {}, or {} after hours.",
    "Contacts:\nAlice: {}\nBob: {}",
    "Tel. {}, Fax {}",
    "{}\n{}\n{}",
    "If no answer on {} try {}.",
    "{}, {}, {}",
]
ORDER_IDS = [
    "ORD-{2015-2026}-{d6}",
    "#{d6}",
    "order {1-9}{d9}",
    "{100-999}-{d7}-{d7}",
    "PO 45{d8}",
    "INV/{2015-2026}/{d5}",
    "1Z{999|A12|4E5}{A3}{d10}",
    "{9400 1|9205 5|9407 3|9303 3|9361 2|9270 1}{d3} {d4} {d4} {d4} {d2}",
    "USPS {9400|9205|9407|9361}{d18}",
    "tracking {d12}",
    "W{d9}",
    "SO-{d5}-{A1}",
    "case {1-9}{d7}",
    "RMA {d4}-{d4}",
    "booking ref {A6}",
    "ticket JIRA-{d4}",
    "customer no. {d8}",
    "order {2020-2026}{1-12:02}{1-28:02}-{d5}",
    "SKU {d3}-{d3}-{d3}",
    "{10-99}-{d4}-{d6}",
]
ORDER_TEXTS = [
    "Where is my {}?",
    "Status of {}: shipped.",
    "{} and {} were merged.",
    "Refund for {} approved, see {}.",
    "{}",
    "Items: {}; {}; {}",
    "{}\n{}\n{}",
    "Customer asks about {} (placed 2025-04-19).",
]
ISO = "{1990-2034}-{1-12:02}-{1-28:02}T{0-23:02}:{0-59:02}:{0-59:02}"
DMY = "{1-31:02}.{1-12:02}.{1990-2034}"
YMD = "{1990-2034}-{1-12:02}-{1-28:02}"
TIMESTAMPS = [
    ISO + "Z",
    ISO + ".{0-999:03}Z",
    ISO + "+0{0-9}:{00|30}",
    ISO + ".{0-999_999:06}-05:00",
    YMD + " {0-23:02}:{0-59:02}:{0-59:02}",
    "{1990-2034}{1-12:02}{1-28:02}T{0-235959:06}Z",
    "{1_000_000_000-1_899_999_999}",
    "{1_000_000_000_000-1_899_999_999_999}",
    "{1_000_000_000_000_000-1_899_999_999_999_999}",
    "{1_000_000_000_000_000_000-1_899_999_999_999_999_999}",
    DMY,
    "{1-31:02}/{1-12:02}/{1990-2034}",
    "{1-31:02}-{1-12:02}-{1990-2034}",
    f"{DMY} - {DMY}",
    f"{DMY} \u2013 {DMY}",
    f"{YMD} \u2013 {YMD}",
    f"{ISO}/{ISO}",
    "{1-12}/{1-28}/{1990-2034} {1-12}:{0-59:02} PM",
    "Mon, {1-28} Jan {1990-2034} {0-23:02}:{0-59:02}:00 +0000",
    "{0-23:02}:{0-59:02}:{0-59:02}.{0-999_999:06}",
    "[" + YMD + " {0-23:02}:{0-59:02}:{0-59:02},{0-999:03}] INFO worker-{1-9} took {1-999} ms",
    "{1990-2034}.{1-12:02}.{1-28:02} {0-23:02}.{0-59:02}",
    "P{1-4}Y{1-11}M{1-27}DT{1-22}H",
    "week {1-52} of {1990-2034}",
]
TIMESTAMP_TEXTS = [
    "{}",
    "The job finished at {}.",
    "created_at={} updated_at={}",
    "From {} to {}",
    "Logged: {}\n{}",
]
UUID = "{x8}-{x4}-4{x3}-{8|9|a|b}{x3}-{x12}"
IDENTIFIERS = [
    UUID,
    "{x40}",
    "{x64}",
    "{x7}",
    "sha256:{x64}",
    "arn:aws:iam::{100_000_000_000-999_999_999_999}:role/deploy",
    "i-0{x16}",
    "req_{A8}{x16}",
    "{1_000_000_000-9_999_999_999}",
    "user {100_000-99_999_999}",
]
IDENTIFIER_TEXTS = [
    "{}",
    "id={}",
    "The request {} failed; retry with {}.",
    "trace {} span {}",
    "Objects:\n{}\n{}",
]
CODE = [
    "for i in range({1-1000}):\n    total += i * {2-99}",
    "const timeout = {100-60000}; // ms\nsetTimeout(run, timeout);",
    "SELECT * FROM orders WHERE id IN ({1-999999}, {1-999999}, {1-999999}, {1-999999});",
    "x = [{0-99}, {0-99}, {0-99}, {0-99}, {0-99}, {0-99}, {0-99}]",
    "matrix = [[{0-9}, {0-9}], [{0-9}, {0-9}]]",
    "color: #{x6}; margin: {0-40}px {0-40}px;",
    "docker run -p {1024-65535}:{1024-65535} app:{1-9}.{0-20}",
    "curl http://10.{0-255}.{0-255}.{1-255}:{1024-9999}/v1/items/{1-999999}",
    "mask = 0x{x8}\nflags = 0b{0|1}{0|1}{0|1}{0|1}{0|1}{0|1}{0|1}{0|1}",
    "assert fib({10-90}) == {100_000-999_999_999_999}",
    "BigInt(2 ** {53-63}) + {1-99}n",
    "const big = {1-9}{d21}n;",
    "np.random.seed({0-4_294_967_295})\narr = np.zeros(({1-512}, {1-512}))",
    "ip route add 192.168.{0-255}.0/24 via 10.0.{0-255}.1",
    '  File "app.py", line {1-2000}, in handler\n    return items[{0-99}]',
    "git checkout {x12}",
    '{{"id": {1-999_999_999}, "qty": {1-99}, "price": {1-9999}.{0-99:02}}}',
    "chmod {644|755|600} file_{1-99}.txt",
    "EXPOSE {1024-65535}\nENV WORKERS={1-64}",
    "print(f'{{{1-999}:>{2-20}}}')",
    "{0-9999}\t{0-9999}\t{0-9999}\t{0-9999}\t{0-9999}\t{0-9999}\t{0-9999}\t{0-9999}",
    "{1-99999},{1-999},{0-9999}.{0-99:02}\n{1-99999},{1-999},{0-9999}.{0-99:02}\n{1-99999},{1-999},{0-9999}.{0-99:02}",
    "regex = r'\\d{{{1-4},{5-18}}}'",
    "$ time make -j{2-64}\nreal {0-59}m{0-59}.{0-999:03}s",
]
VERSION = "{0-29}.{0-39}.{0-199}"
VERSIONS = [
    f"Upgrade from {VERSION} to {VERSION}.",
    f"python {VERSION} / node v{VERSION} / npm {VERSION}",
    f"llama-cpp-python=={VERSION}",
    f"v{VERSION}-rc.{{1-9}}",
    "Chrome/{90-130}.0.{1000-9999}.{10-300}",
    "kernel {4-6}.{0-19}.{0-199}-{1-199}-generic",
    f"Versions: {VERSION} {VERSION} {VERSION}",
    f"build {{1000-99999}} ({VERSION})",
    "iOS {12-18}.{0-7} build {18-22}{A1}{10-999}",
    f"{VERSION}\n{VERSION}\n{VERSION}",
    "ubuntu {20.04|22.04|24.04}.{1-8} LTS",
]
AMOUNT = "{1-999},{0-999:03}.{0-99:02}"
PRICES = [
    "$" + AMOUNT,
    "€ {1-9999},{0-99:02}",
    "{1-999}.{0-999:03},{0-99:02} €",
    "USD " + AMOUNT,
    "£{1-999}.{0-99:02} (was £{1-999}.{0-99:02})",
    "¥{100-9_999_999}",
    "CHF {1-99}'{0-999:03}.{0-99:02}",
    "₹{1-99},{0-99:02},{0-999:03}",
    f"Subtotal {AMOUNT} Tax {AMOUNT} Total {AMOUNT}",
    "{1-99}.{0-99:02} {1-99}.{0-99:02} {1-99}.{0-99:02} {1-99}.{0-99:02}",
    "{1-999} 000 {100-999} kr",
    "Price: {1-99}.{0-99:02} USD x {1-19} = " + AMOUNT,
]
OTHER_NUMBERS = [
    "ISBN 978-{0|1}-{d3}-{d5}-{0-9}",
    "ISBN 0-{d3}-{d5}-{0-9}",
    "Account {d8}, sort code {d2}-{d2}-{d2}",
    "routing {d9} account {d10}",
    "ZIP {d5}-{d4}",
    "VIN 1HGCM{d5}A{d6}",
    "GPS {10-89}.{d6}, {100-179}.{d6}",
    "IMEI-like test value {d5} {d5}",
    "pi = 3.{d15}",
    "e = 2.{d12} and sqrt2 = 1.{d12}",
    "{1-99}% of {1-999} is {1-999}.{d2}",
    "Lottery numbers: {1-49} {1-49} {1-49} {1-49} {1-49} {1-49}",
    "Score {0-9}-{0-9} after {1-120} minutes",
    "Seat {1-60}{A1}, row {1-40}",
    "Part no. {d3}-{d4}-{d2}",
    "Serial {SN|S/N} {d4}-{d4}-{d4}",
    "Coordinates {d3}.{d3}.{d3}.{d3}",
    "Invoice total 1 {d3} {d3} kr",
    "Population {1-999} {d3} {d3}",
    "Test value (area never issued): {000|666|900|943|987}-{d2}-{d4}",
    "Test value (group never issued): {d3}-00-{d4}",
    "Test value (serial never issued): {d3}-{d2}-0000",
    "Ticket {d3}-{d3}-{d3}",
    "Employee id {d9}",
    "{d4} {d4} {d4}",
    "the first {10-40} primes start 2 3 5 7 11 13",
    "Dimensions {10-999} x {10-999} x {10-999} mm",
]


def other_numbers(rng: random.Random) -> Iterator[str]:
    """Templates, and card-shaped numbers failing Luhn or without an issuer: rules pass them, not luck."""
    while True:
        pick = rng.randrange(len(OTHER_NUMBERS) + 2)
        if pick == len(OTHER_NUMBERS):
            digits = luhn_complete(rng, "4", 16)
            digits = digits[:-1] + str((int(digits[-1]) + rng.randrange(1, 10)) % 10)
            yield f"Luhn-failing test card {' '.join(group(digits, (4, 4, 4, 4)))}"
        elif pick == len(OTHER_NUMBERS) + 1:
            prefix = rng.choice(["0", "7", "99", "85", "89"])
            yield f"card-shaped but no issuer: {luhn_complete(rng, prefix, 16)}"
        else:
            yield fill(rng, OTHER_NUMBERS[pick])


def floats(rng: random.Random) -> Iterator[str]:
    """Floats as Python, JavaScript and numpy print them: 16-17 significant digits after a decimal point."""

    def value() -> str:
        return repr(rng.random() * rng.choice([1, 1, 1, 10, 100, 1000]))

    while True:
        shape = rng.randrange(8)
        if shape == 0:
            yield f"[{', '.join(value() for _ in range(rng.randrange(2, 6)))}]"
        elif shape == 1:
            yield f"loss={value()} acc={value()}"
        elif shape == 2:
            yield f"{rng.random():.17e}"
        elif shape == 3:
            yield f'{{"lat": {rng.uniform(-90, 90)!r}, "lon": {rng.uniform(-180, 180)!r}}}'
        elif shape == 4:
            yield "weights:\n" + "\n".join(value() for _ in range(3))
        elif shape == 5:
            yield " ".join(f"{rng.random():.16f}" for _ in range(3))
        else:
            yield ("-" if shape == 6 else "") + value()


def conversations(rng: random.Random, sources: list[Iterator[str]]) -> Iterator[dict]:
    """Chats whose messages end and start with digits: what joined scanning must not glue into a card."""
    while True:
        count = rng.randrange(2, 6)
        roles = ["user", "assistant"]
        yield {
            "messages": [{"role": roles[i % 2], "content": next(rng.choice(sources))} for i in range(count)]
        }


def negatives(corpus: Corpus) -> None:
    rng = corpus.rng
    families = {
        "prose": (family(rng, PROSE), 420),
        "phone_number": (family(rng, PHONES, PHONE_TEXTS), 420),
        "order_id": (family(rng, ORDER_IDS, ORDER_TEXTS), 260),
        "timestamp": (family(rng, TIMESTAMPS, TIMESTAMP_TEXTS), 300),
        "identifier": (family(rng, IDENTIFIERS, IDENTIFIER_TEXTS), 180),
        "code": (family(rng, CODE), 240),
        "version": (family(rng, VERSIONS), 120),
        "price": (family(rng, PRICES), 160),
        "other_number": (other_numbers(rng), 240),
        "float": (floats(rng), 160),
    }
    for form, (source, count) in families.items():
        for _ in range(count):
            route, body = text_body(corpus, next(source))
            corpus.negative(form, route, body)
    chats = conversations(rng, [source for source, _ in families.values()])
    for _ in range(120):
        corpus.negative("conversation", "/v1/chat/completions", next(chats))
    prompts = [families[name][0] for name in ("timestamp", "phone_number", "order_id")]
    for _ in range(40):
        stop = rng.choice([["\n\n"], ["###", "Q:"], ["</s>"], "\nUser:", [f"{rng.randrange(2, 20)}."]])
        body = {"prompt": next(rng.choice(prompts)), "stop": stop, "max_tokens": 32}
        corpus.negative("prompt_and_stop", "/v1/generate", body)
    for _ in range(40):
        body = {"input": [next(families["phone_number"][0]) for _ in range(rng.randrange(2, 5))]}
        corpus.negative("embedding_batch", "/v1/embed", body)


def build(seed: int = SEED) -> dict:
    corpus = Corpus(random.Random(seed))
    card_positives(corpus)
    ssn_positives(corpus)
    negatives(corpus)
    return {"seed": seed, "positives": corpus.positives, "negatives": corpus.negatives}


def render(document: dict) -> str:
    """One case per line, ASCII-escaped, so diffs stay readable and invisible characters stay visible."""
    lines = ["{", f'  "seed": {document["seed"]},']
    for name in ("positives", "negatives"):
        cases = document[name]
        lines.append(f'  "{name}": [')
        lines += [
            f"    {json.dumps(case)}{',' if i < len(cases) - 1 else ''}" for i, case in enumerate(cases)
        ]
        lines.append("  ]," if name == "positives" else "  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    CORPUS.parent.mkdir(parents=True, exist_ok=True)
    document = build()
    CORPUS.write_text(render(document))
    print(f"{CORPUS}: {len(document['positives'])} positives, {len(document['negatives'])} negatives")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Regex building blocks for Cloudflare Zero Trust DLP entries, and the check that a regex is one
Cloudflare accepts: Rust `regex` syntax without look-around or back-references, every repeat bounded
(`*`, `+` and `{n,}` are refused), and at most 1024 bytes per match.

Patterns are written so Python's `re` reads them the way Rust's `regex` does (plain classes, bounded
repeats, alternation, `(?i:...)`, literal non-ASCII characters rather than `\\u`/`\\x{}` escapes, which
the two engines spell differently); the tests and `bench.dlp` evaluate them with `re`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

# re's parser is the one place that knows a pattern's structure; Cloudflare's rules are about structure.
from re import _parser as sre_parse  # type: ignore[attr-defined]

MAX_MATCH_BYTES = 1024  # Cloudflare DLP: "custom text pattern detections are limited to 1024 bytes"
_UTF8_MAX = 4


class UnsupportedRegex(ValueError):
    pass


def _walk(parsed) -> Iterable[tuple[object, object]]:
    for op, argument in parsed:
        yield op, argument
        if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT):
            yield from _walk(argument[2])
        elif op is sre_parse.SUBPATTERN:
            yield from _walk(argument[3])
        elif op is sre_parse.BRANCH:
            for branch in argument[1]:
                yield from _walk(branch)
        elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
            yield from _walk(argument[1])


def check_cloudflare_regex(regex: str) -> None:
    """Raises UnsupportedRegex naming what Cloudflare's DLP would refuse."""
    try:
        parsed = sre_parse.parse(regex)
    except re.error as error:
        raise UnsupportedRegex(f"invalid regex: {error}") from None
    for op, argument in _walk(parsed):
        if op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT, sre_parse.GROUPREF, sre_parse.GROUPREF_EXISTS):
            raise UnsupportedRegex("Cloudflare DLP supports no look-around and back-references")
        repeat = op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT)
        if repeat and argument[1] == sre_parse.MAXREPEAT:
            raise UnsupportedRegex("Cloudflare DLP refuses unbounded repeats (*, +, {n,}): use {m,n}")
    longest = parsed.getwidth()[1]
    if longest * _UTF8_MAX > MAX_MATCH_BYTES:
        raise UnsupportedRegex(
            f"a match can be {longest} characters (up to {longest * _UTF8_MAX} bytes); "
            f"Cloudflare DLP matches at most {MAX_MATCH_BYTES} bytes"
        )


def char_class(characters: Iterable[str], negate: bool = False) -> str:
    """A bracket class of the given characters, as ranges; literal characters except ASCII specials."""
    codes = sorted({ord(c) for c in characters})
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])

    def literal(code: int) -> str:
        char = chr(code)
        return f"\\{char}" if char in "\\]^-[" else char

    body = "".join(
        literal(low) if low == high else f"{literal(low)}{'' if high == low + 1 else '-'}{literal(high)}"
        for low, high in ranges
    )
    return f"[{'^' if negate else ''}{body}]"


DigitClass = Callable[[int, int], str]


def digit_class(zeros: str) -> DigitClass:
    """Digit values low..high in each script whose zero is listed (e.g. "0" and full-width "０")."""

    def make(low: int, high: int) -> str:
        if zeros == "0":
            if low == high:
                return str(low)
            return f"[{low}{'' if high == low + 1 else '-'}{high}]"
        return char_class(chr(ord(zero) + value) for zero in zeros for value in range(low, high + 1))

    return make


def digit_range(low: str, high: str, digit: DigitClass) -> str:
    """Digit strings from low to high (same length, leading zeros count), e.g. 2221-2720."""
    if len(low) != len(high) or low > high:
        raise ValueError(f"bad digit range {low}-{high}")
    width = len(low)
    if width == 0:
        return ""
    if low == high:
        return "".join(digit(int(c), int(c)) for c in low)
    rest = width - 1
    anything = digit(0, 9) + (f"{{{rest}}}" if rest > 1 else "") if rest else ""
    first_low, first_high = int(low[0]), int(high[0])
    if low[1:] == "0" * rest and high[1:] == "9" * rest:
        return digit(first_low, first_high) + anything
    if first_low == first_high:
        return digit(first_low, first_low) + digit_range(low[1:], high[1:], digit)
    branches = [digit(first_low, first_low) + digit_range(low[1:], "9" * rest, digit)]
    if first_high - first_low > 1:
        branches.append(digit(first_low + 1, first_high - 1) + anything)
    branches.append(digit(first_high, first_high) + digit_range("0" * rest, high[1:], digit))
    return f"(?:{'|'.join(branches)})"

"""Stop strings over text that grows piece by piece."""

from runtime.engine.stops import StopScanner


def feed(stops: list[str], pieces: list[str]) -> tuple[str, str, bool]:
    """Return (emitted text, final text, stopped) the way the engine drives the scanner."""
    scanner, text, emitted, out = StopScanner(stops), "", 0, ""
    for piece in pieces:
        previous = len(text)
        text += piece
        end, stopped = scanner.scan(text, previous)
        if stopped:
            text = text[:end]
        out += text[emitted:end]
        emitted = end
        if stopped:
            return out, text, True
    return out + text[emitted:], text, False


def test_no_stops_emits_everything_at_once():
    assert StopScanner([]).scan("abc", 0) == (3, False)


def test_stop_split_across_pieces_is_found_and_never_shown():
    out, final, stopped = feed(["END"], ["one E", "N", "D two"])
    assert (out, final, stopped) == ("one ", "one ", True)


def test_partial_stop_is_held_back_then_released():
    scanner = StopScanner(["END"])
    assert scanner.scan("one EN", 0) == (4, False)
    assert scanner.scan("one ENx", 6) == (7, False)


def test_earliest_of_several_stops_wins():
    out, _, stopped = feed(["zz", "b"], ["a", "bzz"])
    assert (out, stopped) == ("a", True)


def test_unfinished_partial_stop_is_released_at_the_end():
    out, final, stopped = feed(["END"], ["tail E", "N"])
    assert (out, final, stopped) == ("tail EN", "tail EN", False)


def test_empty_stop_strings_are_ignored():
    assert StopScanner([""]).scan("abc", 0) == (3, False)

"""Stop strings over text that grows one token at a time."""


class StopScanner:
    """Finds the first stop string and says how much text is safe to emit.

    Text that could still turn into a stop string is held back, so a streamed answer never shows a
    partial stop string that the final answer then drops: streaming and non-streaming text stay equal.
    """

    def __init__(self, stops: list[str]):
        self._stops = [stop for stop in stops if stop]
        self._longest = max((len(stop) for stop in self._stops), default=0)

    def scan(self, text: str, previous_length: int) -> tuple[int, bool]:
        """Return (safe_end, stopped) for `text`, of which the first `previous_length` chars were scanned.

        stopped=True means a stop string begins at safe_end and the answer ends there.
        """
        if not self._stops:
            return len(text), False
        # A match not found before must end in the new text, so it starts at most `longest - 1` earlier.
        search_from = max(0, previous_length - self._longest + 1)
        hits = [index for stop in self._stops if (index := text.find(stop, search_from)) != -1]
        if hits:
            return min(hits), True
        return len(text) - self._partial_suffix(text), False

    def _partial_suffix(self, text: str) -> int:
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest

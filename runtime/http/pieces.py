"""The piece boundaries of a non-streamed generation, sent beside the answer.

A stream sends the answer piece by piece (one event each); the plain answer holds the same text in one
string. The header `X-Steadytext-Pieces` (contract/routes.json `pieces_header`) carries the lengths of the
pieces, in Unicode code points, as a JSON array, so the Worker can replay a streamed request from an
answer that was stored without a stream, with the live stream's exact events. When the answer has
logprobs, a choice's pieces are an object `{"lengths": [...], "tokens": [...]}`: `tokens[i]` is how many
logprob entries piece i's event carries; the entries left over go with the finishing event. An answer of
n > 1 choices sends `{"choices": [<choice 0's pieces>, <choice 1's>, ...]}`.
"""

import json
from collections.abc import Callable

from runtime.engine.engines import Piece

PIECES_HEADER = "X-Steadytext-Pieces"


class PieceRecorder:
    """Collects each choice's pieces as the model thread produces them (list.append is atomic under the
    GIL). Called with a piece, it records choice 0's."""

    def __init__(self, with_logprobs: bool = False) -> None:
        self._choices: dict[int, list[Piece]] = {}
        self._with_logprobs = with_logprobs

    def __call__(self, piece: Piece) -> None:
        self.for_choice(0)(piece)

    def for_choice(self, choice: int) -> Callable[[Piece], None]:
        return self._choices.setdefault(choice, []).append

    def header(self, choices: int = 1) -> dict[str, str]:
        value = self._of(0) if choices == 1 else {"choices": [self._of(i) for i in range(choices)]}
        return {PIECES_HEADER: json.dumps(value, separators=(",", ":"))}

    def _of(self, choice: int) -> object:
        pieces = self._choices.get(choice, [])
        lengths = [len(piece.text) for piece in pieces]
        if not self._with_logprobs:
            return lengths
        return {"lengths": lengths, "tokens": [len(piece.logprobs) for piece in pieces]}

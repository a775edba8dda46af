"""The piece boundaries of a non-streamed generation, sent beside the answer.

A stream sends the answer piece by piece (one event each); the plain answer holds the same text in one
string. The header `X-Steadytext-Pieces` (contract/routes.json `pieces_header`) carries the lengths of the
pieces, in Unicode code points, as a JSON array, so the Worker can replay a streamed request from an
answer that was stored without a stream, with the live stream's exact events. When the answer has
logprobs, the header is an object `{"lengths": [...], "tokens": [...]}`: `tokens[i]` is how many logprob
entries piece i's event carries; the entries left over go with the finishing event.
"""

import json

from runtime.engine.engines import Piece

PIECES_HEADER = "X-Steadytext-Pieces"


class PieceRecorder:
    """Collects the pieces as the model thread produces them (list.append is atomic under the GIL)."""

    def __init__(self, with_logprobs: bool = False) -> None:
        self.pieces: list[Piece] = []
        self._with_logprobs = with_logprobs

    def __call__(self, piece: Piece) -> None:
        self.pieces.append(piece)

    def header(self) -> dict[str, str]:
        lengths = [len(piece.text) for piece in self.pieces]
        if self._with_logprobs:
            value: object = {"lengths": lengths, "tokens": [len(piece.logprobs) for piece in self.pieces]}
        else:
            value = lengths
        return {PIECES_HEADER: json.dumps(value, separators=(",", ":"))}

"""The piece boundaries of a non-streamed generation, sent beside the answer.

A stream sends the answer piece by piece (one event each); the plain answer holds the same text in one
string. The header `X-Steadytext-Pieces` (contract/routes.json `pieces_header`) carries the lengths of the
pieces, in Unicode code points, as a JSON array, so the Worker can replay a streamed request from an
answer that was stored without a stream, with the live stream's exact events.
"""

import json

PIECES_HEADER = "X-Steadytext-Pieces"


class PieceRecorder:
    """Collects the pieces as the model thread produces them (list.append is atomic under the GIL)."""

    def __init__(self) -> None:
        self.pieces: list[str] = []

    def __call__(self, piece: str) -> None:
        self.pieces.append(piece)

    def header(self) -> dict[str, str]:
        lengths = [len(piece) for piece in self.pieces]
        return {PIECES_HEADER: json.dumps(lengths, separators=(",", ":"))}

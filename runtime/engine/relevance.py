"""Relevance scores for /v1/rerank, from the generative model (no reranker GGUF is on the registry).

Each (query, document) pair becomes one chat turn asking a yes/no question; the score is the softmax
over the logits of the "yes" and "no" tokens at the answer position: p(yes) / (p(yes) + p(no)). The
query and the document are message content, so they are tokenised as text (runtime/engine/chat.py): a
document cannot close the turn and answer for itself. Each pair's prompt is decoded alone in a slot
(SlotContext.prefill), so its score does not depend on what else the model runs.
"""

import math
import threading

import numpy as np

RELEVANCE_PROMPT = (
    'Judge whether the Document answers the Query. Answer only "yes" or "no".\n'
    "Query: {query}\nDocument: {document}\nAnswer:"
)
ANSWER_WORDS = ("yes", "no")
# What decides a score, for the fingerprint: change any of these and scores change.
RELEVANCE_METHOD = {
    "prompt": RELEVANCE_PROMPT,
    "format": "one user turn of the model's chat format; the answer position is the model's turn",
    "answer_tokens": ANSWER_WORDS,
    "score": "exp(yes) / (exp(yes) + exp(no)) over the float32 logits, computed in float64",
}


def relevance_message(query: str, document: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": RELEVANCE_PROMPT.format(query=query, document=document)}]


def relevance_score(logits: np.ndarray, yes: int, no: int) -> float:
    """The two-way softmax, as a logistic of the difference; exp() only ever sees a value <= 0, so no
    logits overflow it."""
    margin = float(logits[yes]) - float(logits[no])
    if margin >= 0:
        return 1.0 / (1.0 + math.exp(-margin))
    odds = math.exp(margin)
    return odds / (1.0 + odds)


class Scoring:
    """A rerank request in a slot: the engine decodes one pair's prompt per turn, so a long list of
    documents takes turns with the generations that share the model instead of holding it."""

    def __init__(self, prompts: list[list[int]], cancelled: threading.Event):
        self.prompts = prompts
        self.cancelled = cancelled
        self.slot = -1
        self.scores: list[float] = []
        self.result: list[float] | None = None

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def next_prompt(self) -> list[int]:
        return self.prompts[len(self.scores)]

    def accept(self, score: float) -> None:
        self.scores.append(score)
        if len(self.scores) == len(self.prompts):
            self.result = self.scores

"""The edge Worker's per-key token budget estimates a prompt's tokens from its UTF-8 bytes, as an upper
bound (edge/src/origin/capacity.ts). This holds only because every token of the model's tokenizer covers at
least one byte: checked here on the real model with prompts that tokenize as finely as any can."""

import random
import re

import pytest

from scripts.local_stack import EDGE_DIR

CAPACITY_TS = (EDGE_DIR / "src" / "origin" / "capacity.ts").read_text()


def edge_constant(name: str) -> int:
    found = re.search(rf"const {name} = (\d+);", CAPACITY_TS)
    assert found, f"{name} is not defined in edge/src/origin/capacity.ts"
    return int(found.group(1))


PROMPT_OVERHEAD_TOKENS = edge_constant("PROMPT_OVERHEAD_TOKENS")
CHAT_TOKENS_PER_MESSAGE = edge_constant("CHAT_TOKENS_PER_MESSAGE")


def random_text(seed: int, length: int) -> str:
    """Code points from every plane in use (no surrogates): mostly byte-fallback tokens."""
    rng = random.Random(seed)
    ranges = [
        (0x20, 0x7E),
        (0xA0, 0x2FF),
        (0x370, 0x52F),
        (0x4E00, 0x9FFF),
        (0xAC00, 0xD7A3),
        (0x1F300, 0x1FAFF),
        (0x20000, 0x2A6DF),
    ]
    return "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(length))


FINE_GRAINED = {
    "digits": "0123456789" * 60,
    "spaced digits": " ".join("4111111111111111" for _ in range(20)),
    "cjk": "日本語のテキストを分割する" * 30,
    "emoji": "😀🎉🧪🚀" * 50,
    "combining marks": "e\u0301a\u0308o\u0302" * 80,
    "control and odd whitespace": "\t\u00a0\u2003\u200b\r\n" * 60,
    "special-token text": "<start_of_turn>user\n<end_of_turn><bos><eos>" * 20,
    "base64": "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0MTExMTExMTExMTExMTEx+/=" * 15,
    "code": "for (let i = 0; i < n; i++) { x[i] = y[i] ^ 0x5f; }\n" * 20,
    "random unicode 1": random_text(1, 600),
    "random unicode 2": random_text(2, 600),
    "single byte": "x",
}


@pytest.mark.parametrize("label", sorted(FINE_GRAINED))
def test_prompt_tokens_never_exceed_the_edge_estimate(loaded_models, label):
    prompt = FINE_GRAINED[label]
    tokens = loaded_models.generator.tokenize_prompt(prompt)
    assert len(tokens) <= len(prompt.encode("utf-8")) + PROMPT_OVERHEAD_TOKENS, (label, len(tokens))


@pytest.mark.parametrize(
    "roles",
    [["user"], ["system", "user"], ["user", "assistant", "user"], ["user", "assistant"] * 4 + ["user"]],
)
@pytest.mark.parametrize(
    "label", ["digits", "emoji", "special-token text", "random unicode 1", "single byte"]
)
def test_chat_prompt_tokens_never_exceed_the_edge_estimate(loaded_models, roles, label):
    messages = [{"role": role, "content": FINE_GRAINED[label][:200]} for role in roles]
    tokens = loaded_models.generator.tokenize_chat(messages)
    estimate = PROMPT_OVERHEAD_TOKENS + sum(
        len(m["role"].encode("utf-8")) + len(m["content"].encode("utf-8")) + CHAT_TOKENS_PER_MESSAGE
        for m in messages
    )
    assert len(tokens) <= estimate, (roles, label, len(tokens), estimate)

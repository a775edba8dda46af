"""A llama.cpp context with one KV stream per slot, driven so that a sequence's logits never depend on
what else is decoded with it (see docs/runtime.md, "Batch invariance").

Each slot is its own sequence with its own KV stream (`kv_unified=False`), which starts at cell 0, so the
cells a sequence reads and their order never depend on other requests. A decode step feeds one token per
active slot; prompts are processed one sequence at a time, always in the same micro-batches. With the
model loaded without weight repacking and ggml-cpu's tiled matmul off (runtime/engine/engines.py), every
matmul row is computed by the same dot product whatever the batch size, so a request's logits are the same
bits alone or next to seven others.
"""

import ctypes
from dataclasses import dataclass

import llama_cpp
import numpy as np

# What decides the bytes of a batched answer, for the fingerprint: change any of these and answers change.
DECODING_PATH = {
    "batching": "one KV stream per sequence, one token per sequence per step, prompts alone",
    "kv_unified": False,
    "weight_repack": False,
    "tiled_k_quant_matmul": False,
    "flash_attn": False,
    "prompt_batch": 512,
}

# Any token id works as padding: its row is computed and discarded, and it never shares a KV stream
# with a real sequence (the stream is cleared before the slot takes a request).
_PADDING_TOKEN = 0


@dataclass(frozen=True)
class SlotOptions:
    slots: int
    n_ctx_per_slot: int
    n_threads: int  # for steps of one row per slot
    n_threads_batch: int  # for prompts (and steps of several rows)
    # The prompt micro-batch: a prompt is decoded in chunks of this many tokens, alone.
    n_prompt_batch: int = DECODING_PATH["prompt_batch"]
    # The knobs below stay at the runtime's values except in bench/batch_invariance.py, which shows
    # what each one does to invariance. Padding makes every step `slots` rows; it is not needed once
    # no kernel depends on the row count, and it costs a full batch per step at one client.
    flash_attn: bool = DECODING_PATH["flash_attn"]
    pad_decode: bool = False
    kv_unified: bool = DECODING_PATH["kv_unified"]


class SlotContext:
    """Owns one llama.cpp context over an already loaded model; not thread-safe (one model thread)."""

    def __init__(self, model: llama_cpp.llama_model_p, options: SlotOptions):
        self.options = options
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = options.slots * options.n_ctx_per_slot
        params.n_batch = max(options.n_prompt_batch, options.slots)
        params.n_ubatch = params.n_batch
        params.n_seq_max = options.slots
        # Logits are wanted for at most one row per slot; this bounds llama.cpp's output buffers.
        params.n_outputs_max = max(options.slots, 1)
        params.kv_unified = options.kv_unified
        params.swa_full = True
        params.n_threads = options.n_threads
        params.n_threads_batch = options.n_threads_batch
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if options.flash_attn
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        params.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(model, params)
        if not self._ctx:
            raise RuntimeError("llama.cpp could not create the batched context")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        self._batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        self._capacity = params.n_batch
        self._positions = [0] * options.slots

    def close(self) -> None:
        if self._ctx:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None

    def clear(self, slot: int) -> None:
        llama_cpp.llama_memory_seq_rm(self._memory, slot, -1, -1)
        self._positions[slot] = 0

    def position(self, slot: int) -> int:
        return self._positions[slot]

    def prefill(self, slot: int, tokens: list[int]) -> np.ndarray:
        """Decode a prompt into an empty slot; returns the logits after its last token."""
        self.clear(slot)
        chunk = self.options.n_prompt_batch
        for start in range(0, len(tokens), chunk):
            piece = tokens[start : start + chunk]
            last = start + len(piece) == len(tokens)
            rows = [(slot, token, start + i, last and i == len(piece) - 1) for i, token in enumerate(piece)]
            self._fill(rows)
            self._decode()
        self._positions[slot] = len(tokens)
        return self._logits((len(tokens) - 1) % chunk)

    def step(self, tokens: dict[int, int]) -> dict[int, np.ndarray]:
        """Append one token to each given slot; returns each slot's next-token logits."""
        idle_but_occupied = [s for s, p in enumerate(self._positions) if p and s not in tokens]
        if idle_but_occupied:
            # Its stream would get a padding token at the wrong position; every held slot steps.
            raise ValueError(f"slots {idle_but_occupied} hold a sequence but get no token")
        rows = []
        for slot in range(self.options.slots):
            if slot in tokens:
                rows.append((slot, tokens[slot], self._positions[slot], True))
            elif self.options.pad_decode:
                rows.append((slot, _PADDING_TOKEN, 0, False))
        self._fill(rows)
        self._decode()
        logits = {}
        for index, (slot, _, _, wanted) in enumerate(rows):
            if wanted:
                logits[slot] = self._logits(index)
                self._positions[slot] += 1
            else:
                llama_cpp.llama_memory_seq_rm(self._memory, slot, -1, -1)
        return logits

    def _fill(self, rows: list[tuple[int, int, int, bool]]) -> None:
        if len(rows) > self._capacity:
            raise ValueError(f"{len(rows)} rows exceed the batch capacity {self._capacity}")
        batch = self._batch
        for index, (slot, token, position, wanted) in enumerate(rows):
            batch.token[index] = token
            batch.pos[index] = position
            batch.n_seq_id[index] = 1
            batch.seq_id[index][0] = slot
            batch.logits[index] = wanted
        batch.n_tokens = len(rows)

    def _decode(self) -> None:
        status = llama_cpp.llama_decode(self._ctx, self._batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status}")

    def _logits(self, index: int) -> np.ndarray:
        pointer = llama_cpp.llama_get_logits_ith(self._ctx, index)
        row = ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float))
        return np.ctypeslib.as_array(row, shape=(self.n_vocab,)).copy()

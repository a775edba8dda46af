"""Turning chat messages into a prompt with the model's own chat template."""

import ctypes
from collections.abc import Callable

import llama_cpp
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

# llama.cpp's built-in formats for GGUFs that ship without a template (base models such as Gemma 3 270M):
# the format of the model family's instruction-tuned variants.
_BUILTIN_FORMAT_BY_ARCHITECTURE_PREFIX = {"gemma": "gemma"}

Messages = list[dict[str, str]]


def chat_prompt_builder(llama: llama_cpp.Llama) -> Callable[[Messages], list[int]] | None:
    """A function from messages to prompt tokens, or None when the model has no known chat format."""
    template = llama.metadata.get("tokenizer.chat_template")
    if template is not None:
        return _jinja_builder(llama, template)
    architecture = llama.metadata.get("general.architecture", "")
    for prefix, name in _BUILTIN_FORMAT_BY_ARCHITECTURE_PREFIX.items():
        if architecture.startswith(prefix):
            return _builtin_builder(llama, name)
    return None


def _jinja_builder(llama: llama_cpp.Llama, template: str) -> Callable[[Messages], list[int]]:
    model = llama._model
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(llama.token_eos()),
        bos_token=model.token_get_text(llama.token_bos()),
    )

    def build(messages: Messages) -> list[int]:
        # Templates raise ValueError for conversations they refuse; the template writes BOS itself.
        prompt = formatter(messages=messages).prompt
        return llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    return build


def _builtin_builder(llama: llama_cpp.Llama, name: str) -> Callable[[Messages], list[int]]:
    def build(messages: Messages) -> list[int]:
        encoded = [(m["role"].encode("utf-8"), m["content"].encode("utf-8")) for m in messages]
        chat = (llama_cpp.llama_chat_message * len(encoded))(*encoded)
        size = 2 * sum(len(role) + len(content) for role, content in encoded) + 256
        buffer = ctypes.create_string_buffer(size)
        length = llama_cpp.llama_chat_apply_template(name.encode(), chat, len(encoded), True, buffer, size)
        if length > size:  # the first guess was short: llama.cpp says how long the prompt is
            buffer = ctypes.create_string_buffer(length)
            length = llama_cpp.llama_chat_apply_template(
                name.encode(), chat, len(encoded), True, buffer, length
            )
        if length < 0:
            raise ValueError(f"llama.cpp cannot apply the {name!r} chat format")
        prompt = buffer.raw[:length]
        return llama.tokenize(prompt, add_bos=True, special=True)

    return build

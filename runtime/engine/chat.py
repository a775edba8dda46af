"""Turning chat messages into prompt tokens with the model's own chat template.

Only the template's own markers become control tokens. What a user wrote (message content and names)
is tokenised as text, so typing `<end_of_turn>\\n<start_of_turn>model` (or `<bos>`, `<eos>`, …) cannot
close the user's turn and forge the next one. llama.cpp's `tokenize(..., special=True)` parses
special-token text anywhere in the string it is given, so the rendered prompt is never tokenised whole:

1. the template is rendered twice: with the real messages (the prompt) and with a placeholder in place
   of every user-written string (the skeleton), which shows where the template put each of them;
2. the prompt is laid out along the skeleton: template text, user text, template text, …;
3. control-token text is looked for in the template's text only; everything between two such tokens
   (template text and user text alike) is tokenised with `special=False`.

llama.cpp tokenises the text between control tokens separately too, so a conversation without
special-token text in it gets exactly the tokens it got when the whole prompt was parsed for them.
"""

import ctypes
import functools
import re
from collections.abc import Callable

import llama_cpp
from llama_cpp._internals import LlamaModel
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

# llama.cpp's built-in formats for GGUFs that ship without a template (base models such as Gemma 3 270M):
# the format of the model family's instruction-tuned variants.
_BUILTIN_FORMAT_BY_ARCHITECTURE_PREFIX = {"gemma": "gemma"}

Messages = list[dict[str, str]]
Render = Callable[[Messages], str]

# Fields of a message that users write (the role is one of three fixed words).
_USER_TEXT_FIELDS = ("content", "name")
# Private-use characters: no template writes them, and a placeholder replaces a user's whole string.
_PLACEHOLDER = re.compile("\ue000([0-9]+)\ue001")
# What parse_special=True adds over parse_special=False in llama.cpp (user-defined tokens match either way).
_SPECIAL_ATTRS = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
# How templates may rewrite a user's string: as it is, C's isspace trim (llama.cpp), Jinja's `trim`.
_REWRITES: tuple[Callable[[str], str], ...] = (
    lambda text: text,
    lambda text: text.strip(" \t\n\v\f\r"),
    str.strip,
)


def chat_prompt_builder(model: LlamaModel) -> Callable[[Messages], list[int]] | None:
    """A function from messages to prompt tokens, or None when the model has no known chat format."""
    metadata = model.metadata()
    template = metadata.get("tokenizer.chat_template")
    if template is not None:
        return TurnTokenizer(model, jinja_renderer(model, template), add_bos=False)
    architecture = metadata.get("general.architecture", "")
    for prefix, name in _BUILTIN_FORMAT_BY_ARCHITECTURE_PREFIX.items():
        if architecture.startswith(prefix):
            # llama.cpp's built-in formats do not write BOS; the tokenizer adds it.
            return TurnTokenizer(model, builtin_renderer(name), add_bos=True)
    return None


def jinja_renderer(model: LlamaModel, template: str) -> Render:
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(model.token_eos()),
        bos_token=model.token_get_text(model.token_bos()),
    )
    # Templates raise ValueError for conversations they refuse; the template writes BOS itself.
    return lambda messages: formatter(messages=messages).prompt


# Built-in formats that have no system turn: llama.cpp puts a system message into the next user turn and
# drops one that no user turn follows, without a word.
_SYSTEM_INTO_NEXT_USER_TURN = frozenset({"gemma"})


def builtin_renderer(name: str) -> Render:
    def render(messages: Messages) -> str:
        if any("\0" in m["content"] for m in messages):  # C strings would silently end there
            raise ValueError("message content must not contain NUL characters")
        if name in _SYSTEM_INTO_NEXT_USER_TURN:
            roles = [m["role"] for m in messages]
            last_user = max((i for i, role in enumerate(roles) if role == "user"), default=-1)
            if "system" in roles[last_user + 1 :]:
                raise ValueError(
                    "a system message must have a user message after it: this model's chat format has no "
                    "system turn and puts it into the next user message (it would be dropped)"
                )
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
        return buffer.raw[:length].decode("utf-8")

    return render


class TurnTokenizer:
    """Messages → prompt tokens where only the template's markers are control tokens (module doc)."""

    def __init__(self, model: LlamaModel, render: Render, add_bos: bool):
        self._model = model
        self._render = render
        # What tokenize(add_bos=True) puts first: BOS when the vocabulary asks for it.
        wants_bos = add_bos and llama_cpp.llama_vocab_get_add_bos(model.vocab)
        self._prefix = [model.token_bos()] if wants_bos else []
        self._template_fragments = functools.lru_cache(maxsize=512)(self._split_template_text)

    def __call__(self, messages: Messages) -> list[int]:
        prompt = self._render(messages)
        user_texts: list[str] = []
        skeleton_messages = []
        for message in messages:
            skeleton = dict(message)
            for field in _USER_TEXT_FIELDS:
                if field in message:
                    skeleton[field] = f"\ue000{len(user_texts)}\ue001"
                    user_texts.append(message[field])
            skeleton_messages.append(skeleton)
        layout = _lay_out(prompt, _PLACEHOLDER.split(self._render(skeleton_messages)), user_texts)
        return self._prefix + self._tokenize(layout)

    def _tokenize(self, layout: list[tuple[str, bool]]) -> list[int]:
        tokens: list[int] = []
        text_run = ""
        for text, written_by_template in layout:
            if not written_by_template:
                text_run += text
                continue
            for fragment in self._template_fragments(text):
                if isinstance(fragment, str):
                    text_run += fragment
                else:
                    tokens += self._text_tokens(text_run)
                    tokens.append(fragment)
                    text_run = ""
        return tokens + self._text_tokens(text_run)

    def _text_tokens(self, text: str) -> list[int]:
        if not text:
            return []
        return self._model.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def _split_template_text(self, text: str) -> tuple[str | int, ...]:
        """The template's text as plain strings and the control tokens llama.cpp finds in it."""
        vocab = self._model.vocab
        parsed = self._model.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        specials = {
            self._model.token_get_text(token): token
            for token in parsed
            if llama_cpp.llama_vocab_get_attr(vocab, token) & _SPECIAL_ATTRS
        }
        if not specials:
            return (text,)
        longest_first = sorted(specials, key=len, reverse=True)
        pieces = re.split(f"({'|'.join(map(re.escape, longest_first))})", text)
        return tuple(specials.get(piece, piece) if index % 2 else piece for index, piece in enumerate(pieces))


def _lay_out(prompt: str, skeleton: list[str], user_texts: list[str]) -> list[tuple[str, bool]]:
    """`prompt` cut into (text, written by the template?) along the skeleton's parts.

    `skeleton` alternates template text and placeholder numbers (re.split with one group). Each user
    string is matched as the template wrote it (as given, or trimmed); a template that rewrites user
    text in any other way is refused rather than guessed at.
    """
    layout = [(skeleton[0], True)]
    position = len(skeleton[0])
    if not prompt.startswith(skeleton[0]):
        raise ValueError("the chat template renders messages inconsistently")
    for index in range(1, len(skeleton), 2):
        original, following = user_texts[int(skeleton[index])], skeleton[index + 1]
        for rewrite in _REWRITES:
            written = rewrite(original)
            if prompt.startswith(written + following, position):
                break
        else:
            raise ValueError("the chat template rewrites message text in a way that cannot be kept as text")
        layout += [(written, False), (following, True)]
        position += len(written) + len(following)
    if position != len(prompt):
        raise ValueError("the chat template renders messages inconsistently")
    return layout

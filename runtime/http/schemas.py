"""Request bodies. Strict: wrong types are refused rather than coerced, unknown fields are refused."""

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)
from pydantic_core import PydanticCustomError

from runtime.engine.sampling import SamplingParams
from runtime.errors import invalid_field


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _array_of(what: str) -> BeforeValidator:
    """For a list field that takes no single value: says what the array holds (not "a string or…")."""

    def check(value: object) -> object:
        if not isinstance(value, list):
            raise PydanticCustomError("not_an_array", "must be an array of {what}", {"what": what})
        return value

    return BeforeValidator(check)


NonEmptyText = Annotated[StrictStr, Field(min_length=1)]
StopStrings = Annotated[
    list[Annotated[StrictStr, Field(min_length=1, max_length=256)]],
    BeforeValidator(_one_or_many),
    Field(max_length=16),
]
Seed = Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]
MaxTokens = Annotated[StrictInt, Field(ge=1)]
EmbeddingInputs = Annotated[
    list[NonEmptyText], BeforeValidator(_one_or_many), Field(min_length=1, max_length=256)
]
# Sampling ranges (runtime/engine/sampling.py): OpenAI's where OpenAI has the field, llama.cpp's otherwise.
Temperature = Annotated[float, Field(ge=0, le=2)]
TopP = Annotated[float, Field(gt=0, le=1)]
TopK = Annotated[StrictInt, Field(ge=0)]
MinP = Annotated[float, Field(ge=0, le=1)]
RepeatPenalty = Annotated[float, Field(gt=0, le=2)]
Penalty = Annotated[float, Field(ge=-2, le=2)]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# A JSON Schema object; which keywords it may use is runtime/engine/json_schema.py's to decide.
JsonSchema = dict[str, Any]


class SamplingFields(StrictBody):
    """Unset fields are greedy decoding's values (runtime/engine/sampling.py SamplingParams)."""

    temperature: Temperature | None = None
    top_p: TopP | None = None
    top_k: TopK | None = None
    min_p: MinP | None = None
    repeat_penalty: RepeatPenalty | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None

    def sampling(self) -> SamplingParams:
        fields = {name: getattr(self, name) for name in SamplingFields.model_fields}
        return SamplingParams(**{name: value for name, value in fields.items() if value is not None})


class _GenerateFields(StrictBody):
    prompt: NonEmptyText
    max_tokens: MaxTokens | None = None
    stop: StopStrings = []
    seed: Seed | None = None


# Bases in this order so the fields are listed as the Worker lists them in an "allowed: …" error:
# prompt, max_tokens, stop, seed, the sampling fields, json_schema, stream (pydantic takes the last base's
# fields first).
class GenerateRequest(SamplingFields, _GenerateFields):
    json_schema: JsonSchema | None = None
    stream: StrictBool = False


class EmbedRequest(StrictBody):
    input: EmbeddingInputs


class StreamOptions(StrictBody):
    include_usage: StrictBool = False


class JsonSchemaFormat(StrictBody):
    """OpenAI's `response_format.json_schema`; `strict` is accepted either way: the schema is always
    enforced, and one the grammar cannot enforce is refused."""

    name: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    schema_: JsonSchema = Field(alias="schema")
    strict: StrictBool | None = None
    description: StrictStr | None = None


class ResponseFormat(StrictBody):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class OpenAIGenerationFields(SamplingFields):
    model: StrictStr
    max_tokens: MaxTokens | None = None
    stop: StopStrings = []
    seed: Seed | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    # The upper bound is a setting (RUNTIME_MAX_CHOICES), checked with the other limits.
    n: Annotated[StrictInt, Field(ge=1)] = 1
    user: StrictStr | None = None
    response_format: ResponseFormat | None = None


class CompletionRequest(OpenAIGenerationFields):
    prompt: Annotated[list[NonEmptyText], BeforeValidator(_one_or_many), Field(min_length=1, max_length=1)]
    # OpenAI's legacy shape: how many alternatives per token (0: only the chosen token's).
    logprobs: Annotated[StrictInt, Field(ge=0, le=5)] | None = None


class ChatMessage(StrictBody):
    role: Literal["system", "user", "assistant"]
    content: StrictStr
    name: StrictStr | None = None


class ChatCompletionRequest(OpenAIGenerationFields):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: MaxTokens | None = None
    logprobs: StrictBool | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None

    def logprob_count(self) -> int | None:
        """Alternatives per token, or None when no logprobs were asked for."""
        if self.top_logprobs is not None and not self.logprobs:
            raise invalid_field("top_logprobs", "needs logprobs: true")
        return (self.top_logprobs or 0) if self.logprobs else None


class EmbeddingsRequest(StrictBody):
    model: StrictStr
    input: EmbeddingInputs
    encoding_format: Literal["float", "base64"] = "float"
    user: StrictStr | None = None


# Caps of /v1/detokenize and /v1/rerank; the Worker refuses the same (edge/src/admission/validate.ts).
MAX_DETOKENIZE_TOKENS = 65_536
MAX_RERANK_DOCUMENTS = 64


class TokenizeRequest(StrictBody):
    """Exactly one of `prompt` (tokenised as /v1/generate and /v1/completions do) and `messages` (as
    /v1/chat/completions does, the chat template applied)."""

    model: StrictStr | None = None
    prompt: NonEmptyText | None = None
    messages: Annotated[list[ChatMessage], _array_of("messages"), Field(min_length=1)] | None = None
    with_pieces: StrictBool = False


class DetokenizeRequest(StrictBody):
    model: StrictStr | None = None
    tokens: Annotated[
        list[Annotated[StrictInt, Field(ge=0)]],
        _array_of("token ids"),
        Field(min_length=1, max_length=MAX_DETOKENIZE_TOKENS),
    ]


class RerankRequest(StrictBody):
    model: StrictStr | None = None
    query: NonEmptyText
    documents: Annotated[
        list[NonEmptyText], _array_of("strings"), Field(min_length=1, max_length=MAX_RERANK_DOCUMENTS)
    ]
    top_n: Annotated[StrictInt, Field(ge=1)] | None = None
    return_documents: StrictBool = False

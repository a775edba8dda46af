"""Request bodies. Strict: wrong types are refused rather than coerced, unknown fields are refused."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


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
# Greedy decoding is the product: any other sampling request is refused, not silently ignored.
GreedyTemperature = Annotated[float, Field(ge=0, le=0)]
GreedyTopP = Annotated[float, Field(ge=1, le=1)]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# A JSON Schema object; which keywords it may use is runtime/engine/json_schema.py's to decide.
JsonSchema = dict[str, Any]


class GenerateRequest(StrictBody):
    prompt: NonEmptyText
    max_tokens: MaxTokens | None = None
    stop: StopStrings = []
    seed: Seed | None = None
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


class OpenAIGenerationFields(StrictBody):
    model: StrictStr
    max_tokens: MaxTokens | None = None
    stop: StopStrings = []
    seed: Seed | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    temperature: GreedyTemperature | None = None
    top_p: GreedyTopP | None = None
    n: Annotated[StrictInt, Field(ge=1, le=1)] = 1
    user: StrictStr | None = None
    response_format: ResponseFormat | None = None


class CompletionRequest(OpenAIGenerationFields):
    prompt: Annotated[list[NonEmptyText], BeforeValidator(_one_or_many), Field(min_length=1, max_length=1)]


class ChatMessage(StrictBody):
    role: Literal["system", "user", "assistant"]
    content: StrictStr
    name: StrictStr | None = None


class ChatCompletionRequest(OpenAIGenerationFields):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: MaxTokens | None = None


class EmbeddingsRequest(StrictBody):
    model: StrictStr
    input: EmbeddingInputs
    encoding_format: Literal["float", "base64"] = "float"
    user: StrictStr | None = None

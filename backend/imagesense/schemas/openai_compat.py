"""The OpenAI-compatible contract under /v1: chat completions and models, as OpenAI's SDKs speak them.

Fields the service doesn't use are ignored, as peers (vLLM, llama-server, Ollama) do; fields whose
meaning it can't honour (``n`` > 1, tools, log probabilities) are refused by name. The bounds are the
typed API's own (``schemas.tasks``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from imagesense.schemas.tasks import (
    MAX_HISTORY_CHARS,
    MAX_HISTORY_TURNS,
    MAX_JSON_SCHEMA_CHARS,
    MAX_QUESTION_CHARS,
    MAX_STOP_CHARS,
    MAX_STOP_SEQUENCES,
    MAX_TEMPERATURE,
    MAX_TURN_CHARS,
    SEED_RANGE,
    JsonSchema,
    Resolution,
)

# Every earlier turn of the typed API's history, the question, and system messages around them.
MAX_CHAT_MESSAGES = MAX_HISTORY_TURNS + 8
MAX_CHAT_TEXT_CHARS = MAX_HISTORY_CHARS + MAX_QUESTION_CHARS
# Objects and arrays in one body, counted in its bytes before it is parsed: a real request has a few hundred
# (a large schema a few thousand), while 80 MiB of `[{},{},…]` would be ~1.9 GB of Python objects.
MAX_JSON_CONTAINERS = 100_000
# A body's text beside its images, JSON-escaped at worst (a `\ud83d\ude00` pair: 12 bytes a character).
MAX_CHAT_TEXT_BYTES = 12 * (MAX_CHAT_TEXT_CHARS + MAX_JSON_SCHEMA_CHARS)


class Lenient(BaseModel):
    """A request part: unknown fields are ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="ignore")


class ImageUrl(Lenient):
    url: str = Field(
        min_length=1,
        description="A data: URL (base64), imagesense://<image_id> for an uploaded image, or an http(s) URL "
        "under a prefix the operator allows (IMAGESENSE_ALLOWED_IMAGE_URLS).",
    )
    detail: Resolution = Field("auto", description="The pixel budget: low, auto (the task's own) or high.")


class TextContent(Lenient):
    type: Literal["text"]
    text: str = Field(max_length=MAX_TURN_CHARS)


class ImageContent(Lenient):
    type: Literal["image_url"]
    image_url: ImageUrl | str = Field(description="An image_url object, or the URL alone (as Ollama accepts).")


ContentPart = Annotated[TextContent | ImageContent, Field(discriminator="type")]


class ChatMessageIn(Lenient):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = Field(
        None, description="Text, or a list of text and image parts (images in user messages only)."
    )


class JsonSchemaFormat(Lenient):
    name: str = Field("answer", max_length=64)
    description: str | None = None
    schema_: JsonSchema = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(Lenient):
    include_usage: bool = False


def _only_one(n: int | None) -> int | None:
    if n is not None and n != 1:
        raise ValueError("only one choice per request is supported (n=1)")
    return n


def _no_tools(tools: list[Any] | None) -> list[Any] | None:
    if tools:
        raise ValueError("tools (function calling) are not supported")
    return tools


def _no_logprobs(logprobs: bool | None) -> bool | None:
    if logprobs:
        raise ValueError("log probabilities are not supported")
    return logprobs


Stop = Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]


class ChatCompletionRequest(Lenient):
    model: str = Field(max_length=256, description="The id from GET /v1/models.")
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=MAX_CHAT_MESSAGES)
    max_tokens: int | None = Field(None, ge=1, description="Deprecated by OpenAI; same as max_completion_tokens.")
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=MAX_TEMPERATURE)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stop: Stop | Annotated[list[Stop], Field(max_length=MAX_STOP_SEQUENCES)] | None = None
    n: Annotated[int | None, AfterValidator(_only_one)] = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    tools: Annotated[list[Any] | None, AfterValidator(_no_tools)] = None
    logprobs: Annotated[bool | None, AfterValidator(_no_logprobs)] = None


# --- responses ------------------------------------------------------------------------------------


class PromptTokensDetails(BaseModel):
    cached_tokens: int = Field(description="Prompt tokens reused from an earlier request (not computed again).")


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


ChatFinishReason = Literal["stop", "length"]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: ChatFinishReason
    logprobs: None = None


class CompletionHead(BaseModel):
    """What every response and chunk of one completion repeats."""

    id: str
    created: int
    model: str
    system_fingerprint: str


class ChatCompletion(CompletionHead):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[Choice]
    usage: CompletionUsage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: ChatFinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(CompletionHead):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None


class Architecture(BaseModel):
    input_modalities: list[Literal["text", "image"]]
    output_modalities: list[Literal["text"]]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "imagesense"
    architecture: Architecture = Field(description="What the model reads and writes, as llama-server reports it.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    """Errors on /v1, in OpenAI's envelope (the typed API under /api/v1 keeps its own)."""

    error: OpenAIErrorBody

"""Task options and results: the contract shared by the HTTP endpoints and the WebSocket stream."""

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints

from imagesense.schemas.base import ApiModel

TypedTask = Literal["ocr", "describe", "ask"]  # what a client names in the typed API and the stream
TaskName = Literal[TypedTask, "chat", "extract"]  # chat: a /v1 conversation; extract: fields as JSON
DescribeDetail = Literal["brief", "detailed"]
Resolution = Literal["low", "auto", "high"]
FinishReason = Literal["stop", "length", "repetition", "cancelled"]
OcrEngineChoice = Literal["auto", "fast", "vlm"]
PageRotation = Literal[0, 90, 180, 270]

# Every bound of a request is defined here, once, and used by the HTTP forms and the stream alike.
MAX_QUESTION_CHARS = 4000
MAX_HISTORY_TURNS = 32
MAX_TURN_CHARS = 32000
MAX_HISTORY_CHARS = 64000
MAX_IMAGES_PER_REQUEST = 32  # the hard cap; IMAGESENSE_MAX_IMAGES_PER_REQUEST sets the working limit below it
MIN_PIXEL_BUDGET = 4096
MAX_TEMPERATURE = 2.0
MAX_JSON_SCHEMA_CHARS = 32000
MAX_SCHEMA_PATTERN_CHARS = 1000  # each `pattern` and `patternProperties` key; longer ones are hostile, not useful
MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 64
SEED_RANGE = (-(2**63), 2**64 - 1)  # what a client may send; torch seeds take the value modulo 2**64


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


Question = Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUESTION_CHARS), AfterValidator(_not_blank)]


class Turn(ApiModel):
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=MAX_TURN_CHARS)


def _check_history(history: list[Turn]) -> list[Turn]:
    """Earlier turns alternate user / assistant, start with the user, end with an answer, and stay
    within the total size."""
    for index, turn in enumerate(history):
        expected = "user" if index % 2 == 0 else "assistant"
        if turn.role != expected:
            raise ValueError(
                f"turn {index} has role {turn.role!r}; turns must alternate user, assistant, ... starting with user"
            )
    if len(history) % 2:
        raise ValueError("history must end with an assistant turn")
    total = sum(len(turn.content) for turn in history)
    if total > MAX_HISTORY_CHARS:
        raise ValueError(f"history has {total} characters; the limit is {MAX_HISTORY_CHARS}")
    return history


History = Annotated[list[Turn], Field(max_length=MAX_HISTORY_TURNS), AfterValidator(_check_history)]


_SCHEMA_VALUES = frozenset({"const", "enum", "default", "examples"})  # data, not schema: patterns there are text


def _patterns(schema: Any) -> list[str]:
    """Every regular expression a schema holds: `pattern` values and `patternProperties` keys."""
    if isinstance(schema, list):
        return [found for item in schema for found in _patterns(item)]
    if not isinstance(schema, dict):
        return []
    found = [schema["pattern"]] if isinstance(schema.get("pattern"), str) else []
    if isinstance(schema.get("patternProperties"), dict):
        found.extend(schema["patternProperties"])
    return found + [deeper for key, value in schema.items() if key not in _SCHEMA_VALUES for deeper in _patterns(value)]


def _check_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(schema)) > MAX_JSON_SCHEMA_CHARS:
        raise ValueError(f"the schema is over {MAX_JSON_SCHEMA_CHARS} characters, the limit")
    if (longest := max(map(len, _patterns(schema)), default=0)) > MAX_SCHEMA_PATTERN_CHARS:
        raise ValueError(f"a pattern has {longest} characters; the limit is {MAX_SCHEMA_PATTERN_CHARS}")
    return schema


JsonSchema = Annotated[dict[str, Any], AfterValidator(_check_json_schema)]
JSON_SCHEMA_DESCRIPTION = (
    "A JSON schema the answer must follow: the answer is then JSON valid against it (constrained "
    "decoding), and `data` holds it parsed."
)


class TaskOptions(ApiModel):
    """Options every task takes. Unset fields use the task's defaults."""

    max_new_tokens: int | None = Field(
        None, ge=1, description="Tokens to generate at most (capped by IMAGESENSE_MAX_NEW_TOKENS_LIMIT)."
    )
    resolution: Resolution = Field(
        "auto",
        description="Pixel budget per image: low, high, or auto (the task's own budget: more pixels for "
        "OCR, whose text must stay readable, fewer for a description).",
    )
    max_pixels: int | None = Field(
        None,
        ge=MIN_PIXEL_BUDGET,
        description="Explicit pixel-area budget per image (overrides `resolution`; capped by "
        "IMAGESENSE_VISION_MAX_PIXELS). One visual token covers 32×32 px.",
    )
    detail: DescribeDetail = Field("brief", description="Describe only: a brief or a detailed description.")
    engine: OcrEngineChoice | None = Field(
        None, description="OCR only: fast (PP-OCR), vlm (Qwen3-VL) or auto; unset = IMAGESENSE_OCR_ENGINE."
    )
    temperature: float = Field(0.0, ge=0.0, le=MAX_TEMPERATURE, description="0 is greedy (deterministic).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling, when temperature > 0.")
    seed: int | None = Field(
        None, ge=SEED_RANGE[0], le=SEED_RANGE[1], description="With temperature > 0: the same seed, the same answer."
    )


class Usage(ApiModel):
    prompt_tokens: int = Field(description="Tokens in the prompt, visual tokens included.")
    image_tokens: int = Field(description="Visual tokens among them.")
    cached_tokens: int = Field(
        0, description="Prompt tokens reused from an earlier request about the same images (not computed again)."
    )
    completion_tokens: int


class Timings(ApiModel):
    queue_ms: float = Field(description="Waiting for a free worker.")
    prefill_ms: float = Field(description="Image encoding and prompt until the first token.")
    decode_ms: float = Field(description="First token to last.")
    total_ms: float = Field(description="Arrival to last token.")


class ImageUsage(ApiModel):
    image_id: str
    width: int = Field(description="Width of the stored image.")
    height: int = Field(description="Height of the stored image.")
    model_width: int = Field(description="Width the model saw after fitting the pixel budget.")
    model_height: int = Field(description="Height the model saw.")
    pixel_budget: int = Field(description="Pixel-area budget applied.")
    visual_tokens: int = Field(description="Visual tokens the image became.")


class TaskResult(ApiModel):
    task: TaskName
    text: str
    model: str
    finish_reason: FinishReason
    usage: Usage
    timings: Timings
    images: list[ImageUsage]
    data: Any = Field(
        None,
        description="With `json_schema`: the answer parsed, valid against the schema (null only if the "
        "answer isn't: an engine that can't constrain its output, say).",
    )


class OcrLine(ApiModel):
    text: str
    confidence: float = Field(ge=0.0, le=1.0)
    box: list[tuple[float, float]] = Field(
        min_length=4,
        max_length=4,
        description="Four corners (x, y) in pixels of the uploaded image after EXIF orientation, "
        "clockwise from the top-left corner of the text.",
    )


class OcrBlock(ApiModel):
    """A block of the page in reading order: running text, or a table."""

    kind: Literal["text", "table"]
    box: tuple[float, float, float, float] = Field(
        description="left, top, right, bottom in pixels of the upload: the hull of its lines' boxes."
    )
    lines: list[int] = Field(description="Indices into `lines`, in reading order.")


class OcrCell(ApiModel):
    row: int
    col: int
    text: str


class OcrTable(ApiModel):
    rows: int
    columns: int
    cells: list[OcrCell] = Field(description="Row by row, left to right.")


class PageOcr(ApiModel):
    """One page of a PDF's OCR."""

    page: int
    source: Literal["pdf_text", "ocr"] = Field(
        description="pdf_text: read from the page's text layer (exact); ocr: recognised from a render."
    )
    text: str
    lines: list[OcrLine] = Field(description="Boxes in pixels of the page rendered at `width` × `height`.")
    markdown: str | None
    blocks: list[OcrBlock] = Field(default_factory=list, description="The page's blocks in reading order.")
    tables: list[OcrTable] = Field(default_factory=list, description="Tables found on the page.")
    width: int
    height: int
    elapsed_ms: float


class OcrResult(TaskResult):
    """OCR's result: the text plus, from the fast engine, its lines with boxes."""

    task: Literal["ocr"] = "ocr"
    engine: Literal["fast", "vlm"] = Field(description="The engine whose text this is.")
    lines: list[OcrLine] = Field(description="Lines in reading order (fast engine; empty from the VLM).")
    markdown: str | None = Field(None, description="The text as Markdown (rows of cells become tables).")
    rotation: PageRotation | None = Field(
        None, description="How far the page was turned counter-clockwise (fast engine)."
    )
    blocks: list[OcrBlock] = Field(default_factory=list, description="Fast engine: the page's blocks in reading order.")
    tables: list[OcrTable] = Field(
        default_factory=list, description="Fast engine: tables found (rows of aligned cells)."
    )
    layout_confidence: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Fast engine: the share (by length) of lines running level with the page. Low on text "
        "set along curves or scattered at angles, where auto OCR asks the VLM instead.",
    )
    reading_order: Literal["layout", "model"] | None = Field(
        None,
        description="layout: ordered by the service from the line boxes (deskew, columns, rows); "
        "model: as the VLM wrote it.",
    )
    document_id: str | None = Field(None, description="A PDF's OCR: the document read.")
    pages: list[PageOcr] = Field(
        default_factory=list, description="A PDF's OCR: one result per page (`text` joins them, pages apart)."
    )


AnyTaskResult = OcrResult | TaskResult


class Estimate(ApiModel):
    """What a task would cost, computed without running it."""

    task: TaskName
    engine: Literal["fast", "vlm"]
    images: list[ImageUsage] = Field(description="Per image: the size the model would see, and its visual tokens.")
    image_tokens: int
    max_new_tokens: int
    prefill_s: float = Field(description="Expected time to the first token.")
    decode_s: float = Field(
        description="Expected time for max_new_tokens tokens (an upper bound: answers may stop early)."
    )
    total_s: float
    queued_ahead: int = Field(description="Requests waiting for a worker now.")
    basis: str = Field(description="Where the expected times come from.")

"""What the service asks of a model, and what it gets back: the engine boundary.

The service talks to engines only through these protocols. The local transformers engine and the fast
OCR engine implement them today; a remote engine (an OpenAI-compatible upstream) can implement the same
without the service changing. Nothing here knows about HTTP: engines raise ``engine.errors`` exceptions,
and the service maps them to API errors in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict

from PIL import Image

FinishReason = Literal["stop", "length", "repetition", "cancelled"]
Role = Literal["system", "user", "assistant"]


class TextPart(TypedDict):
    type: Literal["text"]
    text: str


class ImagePart(TypedDict):
    """A placeholder: the n-th image part of a conversation is ``GenerationRequest.images[n]``."""

    type: Literal["image"]


class ChatMessage(TypedDict):
    role: Role
    content: list[TextPart | ImagePart]


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[ChatMessage]
    images: list[Image.Image]  # in the order of the image parts, already fitted to the pixel budget
    max_pixels: int  # the pixel-area budget the images were fitted to
    min_pixels: int
    max_new_tokens: int
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    repetition_guard: bool = True
    image_keys: tuple[str, ...] = ()  # content ids of the images: what a reusable prefix is keyed by
    max_prompt_tokens: int | None = None  # refuse longer prompts (InvalidGenerationRequest) before any model work
    seed: int | None = None  # with temperature > 0: the same seed, the same answer
    stop: tuple[str, ...] = ()  # the answer ends before the first of these
    json_schema: Mapping[str, Any] | None = None  # the answer is JSON valid against this schema


@dataclass(frozen=True)
class GenerationResult:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    image_tokens: int
    completion_tokens: int
    prefill_ms: float  # start to first token: image encoding and prompt
    decode_ms: float  # first token to last
    cached_tokens: int = 0  # prompt tokens whose keys and values were reused instead of computed


class GenerationControl(Protocol):
    """The caller's side of a running generation."""

    def should_stop(self) -> bool:
        """True once the request is cancelled or past its deadline; engines check it as often as they can."""
        ...

    def emit(self, text: str) -> None:
        """A piece of the answer, as soon as it is known."""
        ...


class Unattended:
    """The control of work nobody watches (warm-up, benchmarks): it never stops and drops the text."""

    def should_stop(self) -> bool:
        return False

    def emit(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class Capabilities:
    max_images: int | None = None  # per request; None = no limit of the engine's own
    prefix_reuse: bool = False  # a follow-up about the same images skips work already done
    json_schema: bool = False  # follows GenerationRequest.json_schema token by token


@dataclass(frozen=True)
class EngineInfo:
    model: str  # what the engine serves: a hub id, a folder, an upstream model name
    precision: str | None = None  # e.g. "bfloat16, int8-weight"
    capabilities: Capabilities = field(default_factory=Capabilities)
    decode: str | None = None  # what a decode step runs on, e.g. "lean step, PyTorch's kernels"


class VisionLanguageEngine(Protocol):
    """Generates text from a conversation with images, on the calling (worker) thread."""

    @property
    def info(self) -> EngineInfo: ...

    def unavailable_reason(self) -> str | None:
        """None while the engine can take work; otherwise why not (an upstream that is down, say)."""
        ...

    def generate(self, request: GenerationRequest, control: GenerationControl) -> GenerationResult:
        """Run one generation; returns early with ``finish_reason="cancelled"`` once ``control.should_stop()``."""
        ...


# --- OCR -------------------------------------------------------------------------------------------

Point = tuple[float, float]
Rotation = Literal[0, 90, 180, 270]  # how far the page is turned counter-clockwise


@dataclass(frozen=True)
class TextLine:
    text: str
    confidence: float
    box: tuple[Point, Point, Point, Point]  # four corners in image pixels, clockwise from the text's top-left


@dataclass(frozen=True)
class OcrReading:
    lines: Sequence[TextLine]  # in the engine's own order
    rotation: Rotation  # the page's rotation, as the engine found it
    elapsed_ms: float


class OcrEngine(Protocol):
    """Finds and reads the text lines of one image, on the calling (worker) thread."""

    @property
    def name(self) -> str: ...

    def read(self, image: Image.Image) -> OcrReading: ...

"""Service configuration: every field comes from an ``IMAGESENSE_*`` environment variable (or ``.env``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from imagesense.schemas.tasks import MAX_IMAGES_PER_REQUEST

MIB = 1024 * 1024
# One visual token of Qwen3-VL covers 32×32 pixels (16 px patches, merged 2×2).
PIXELS_PER_VISUAL_TOKEN = 32 * 32
DEFAULT_STATIC_DIR = Path(__file__).resolve().parents[2] / "frontend" / "dist"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMAGESENSE_", env_file=".env", extra="ignore", env_ignore_empty=True)

    # --- model -------------------------------------------------------------------------------------
    model: str = Field(
        "Qwen/Qwen3-VL-2B-Instruct",
        min_length=1,
        max_length=1024,
        description="Hugging Face hub id or local folder of a Qwen3-VL checkpoint.",
    )
    model_revision: str | None = Field(
        None, min_length=1, max_length=256, description="Hub revision (branch, tag or commit) to load."
    )
    load_model: bool = Field(True, description="Load the vision-language model at start-up.")
    engine: Literal["local", "remote"] = Field(
        "local",
        description="local: the model runs in this process; remote: generation goes to an OpenAI-compatible "
        "upstream (IMAGESENSE_REMOTE_URL) and no model is loaded here (fast OCR still runs locally).",
    )
    remote_url: str | None = Field(
        None,
        pattern=r"^https?://",
        max_length=2048,
        description="remote: the upstream's OpenAI base URL, e.g. http://vllm:8000/v1.",
    )
    remote_model: str | None = Field(
        None, min_length=1, max_length=256, description="remote: the model name the upstream serves."
    )
    remote_api_key: str | None = Field(None, min_length=1, max_length=4096, description="remote: Bearer key.")
    remote_connect_timeout_s: float = Field(
        5.0, gt=0, le=120, description="remote: limit for opening a connection (refused ones are retried twice)."
    )
    remote_idle_timeout_s: float = Field(
        300.0, gt=0, le=3600, description="remote: longest wait for the upstream's next bytes, first token included."
    )
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="Weights dtype; auto picks bfloat16 where the CPU supports it, else float32."
    )
    quantization: Literal["none", "int8-weight", "int8-dynamic", "int4-weight"] = Field(
        "int8-weight",
        description="Weights of the language model and lm_head: none (bfloat16), int8-weight (W8A16, the "
        "default: ~2× faster decode, per-layer error ~1%), int8-dynamic (W8A8) or int4-weight (W4A16, fastest, "
        "~10% per-layer error).",
    )
    quantize_vision: bool = Field(False, description="Quantize the vision tower's Linears too (same scheme).")
    native_kernels: Literal["auto", "on", "off"] = Field(
        "auto",
        description="The engine's own CPU decode kernels for int8-weight: auto (where they win: x86 AVX2 "
        "without native bfloat16), on (wherever they build, for measuring; the start fails where they can't), "
        "off (PyTorch's kernels only).",
    )
    prefix_cache_mb: int = Field(
        512,
        ge=0,
        le=65536,
        description="Memory for reused prompt prefixes (KV cache of image + earlier turns); 0 = off.",
    )
    warmup: bool = Field(True, description="Run one tiny generation after loading so requests skip one-time costs.")
    torch_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="Torch threads per generation; 0 = the cores shared out among the generations running.",
    )

    # --- pool ----------------------------------------------------------------------------------------
    max_concurrency: int = Field(2, ge=1, le=16, description="Generations running at once.")
    queue_size: int = Field(8, ge=0, le=1024, description="Requests waiting behind them; more get 429.")
    job_timeout_s: float = Field(
        600.0, gt=0, le=86400, description="A request's limit from arrival to last token, queue included (504)."
    )
    shutdown_grace_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="On SIGTERM: how long queued and running work may go on before it is stopped "
        "(new work gets 503 meanwhile).",
    )

    # --- generation ---------------------------------------------------------------------------------
    max_new_tokens_limit: int = Field(
        2048, ge=1, le=32768, description="Upper bound for a request's max_new_tokens (/v1: max_tokens)."
    )
    served_model_name: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="The model id /v1 reports and accepts (besides `imagesense`); unset: IMAGESENSE_MODEL.",
    )
    max_prompt_tokens: int = Field(
        8192,
        ge=256,
        le=262144,
        description="Longest prompt (visual tokens + text), checked after tokenization and before any model "
        "work (422 past it). Its KV cache is ~112 KiB a token at 2B shapes: 8192 tokens ≈ 0.9 GiB.",
    )
    repetition_guard: bool = Field(
        True, description="Stop a generation that has fallen into a loop (the same span repeated many times)."
    )

    # --- fast OCR -----------------------------------------------------------------------------------
    fast_ocr: bool = Field(True, description="Load the fast OCR engine (PP-OCR through RapidOCR, no download).")
    ocr_engine: Literal["auto", "fast", "vlm"] = Field(
        "auto",
        description="OCR engine when a request names none: fast, vlm, or auto (fast, falling back to the "
        "VLM when the fast result is empty or low-confidence and the VLM is loaded).",
    )
    ocr_fallback_confidence: float = Field(
        0.75, ge=0.0, le=1.0, description="auto: mean line confidence below which the VLM reads the image instead."
    )
    ocr_fallback_layout_confidence: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="auto: layout confidence (the share of the lines running level with the page) below which "
        "the VLM reads the image instead: text on curves or scattered at angles.",
    )
    fast_ocr_concurrency: int = Field(1, ge=1, le=8, description="Fast OCR jobs running at once (own pool).")
    fast_ocr_queue_size: int = Field(16, ge=0, le=1024, description="Fast OCR jobs waiting; more get 429.")
    fast_ocr_threads: int = Field(0, ge=0, le=256, description="ONNX Runtime threads per fast OCR job; 0 = all cores.")

    # --- images --------------------------------------------------------------------------------------
    max_upload_bytes: int = Field(20 * MIB, ge=1024, le=512 * MIB, description="Largest accepted image file, in bytes.")
    max_image_pixels: int = Field(
        64_000_000,
        ge=PIXELS_PER_VISUAL_TOKEN,
        le=1_000_000_000,
        description="Largest accepted image area (width × height), checked before decoding (bomb guard).",
    )
    max_images_per_request: int = Field(4, ge=1, le=MAX_IMAGES_PER_REQUEST, description="Images one request may carry.")
    vision_max_pixels: int = Field(
        1536 * 1536,
        ge=4 * PIXELS_PER_VISUAL_TOKEN,
        le=16_777_216,
        description="Cap on the pixel area an image is resized to before the vision encoder (one visual "
        "token per 32×32 px); per-task budgets and per-request max_pixels stay below it.",
    )
    vision_min_pixels: int = Field(
        4 * PIXELS_PER_VISUAL_TOKEN,
        ge=PIXELS_PER_VISUAL_TOKEN,
        le=1_048_576,
        description="Smallest pixel area; smaller images are scaled up to it.",
    )

    allowed_image_urls: list[str] = Field(
        default_factory=list,
        description="http(s) URL prefixes /v1 may fetch images from (JSON list, e.g. "
        '["https://images.example.com/"]): same scheme, host and port, path under the prefix. Empty: none.',
    )
    image_url_timeout_s: float = Field(10.0, gt=0, le=300, description="Limit for fetching one image URL.")

    max_pdf_pages: int = Field(50, ge=1, le=2000, description="Pages a PDF may have (413 past it).")
    store_max_documents: int = Field(64, ge=1, le=10_000, description="Uploaded PDFs kept (LRU).")

    # --- image store ---------------------------------------------------------------------------------
    store_max_images: int = Field(256, ge=1, le=100_000, description="Uploaded images kept (LRU).")
    store_max_bytes: int = Field(
        512 * MIB, ge=MIB, le=64 * 1024 * MIB, description="Memory the uploaded images may take (LRU)."
    )
    store: Literal["memory", "redis"] = Field(
        "memory",
        description="memory: uploads live in this process; redis: also in Redis (IMAGESENSE_REDIS_URL), so "
        "every replica can use an upload made through any of them.",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", pattern=r"^rediss?://", max_length=2048, description="redis: the server."
    )
    store_ttl_s: int = Field(
        86_400, ge=60, le=30 * 86_400, description="redis: how long an upload is kept after its last upload."
    )
    shared_store_max_bytes: int = Field(
        2048 * MIB,
        ge=MIB,
        le=1024 * 1024 * MIB,
        description="redis: upload bytes kept in Redis in all (oldest out first).",
    )

    # --- http ----------------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", min_length=1, max_length=253, description="Address `imagesense serve` binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port `imagesense serve` binds.")
    static_dir: Path = Field(DEFAULT_STATIC_DIR, description="Built SPA served at / when the folder exists.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    log_format: Literal["text", "json"] = Field("text", description="Log lines as text or as JSON objects.")
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Other origins allowed to call the API from a browser, the stream included (JSON list).",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description='Host names the service answers to (JSON list; ["*"] for any): a request naming another '
        "Host gets 400 (DNS rebinding). Empty: localhost, 127.0.0.1, ::1 and IMAGESENSE_HOST.",
    )

    # --- access --------------------------------------------------------------------------------------
    api_keys: list[str] = Field(
        default_factory=list,
        description='API keys (JSON list of "key" or "name:key"); when any is set, every /api/v1 route '
        "but /health and /ready needs Authorization: Bearer <key>. Empty: no keys (a local single user).",
    )
    api_keys_file: Path | None = Field(
        None, description='A file with one key per line ("key" or "name:key"; # starts a comment).'
    )
    metrics_key: str | None = Field(
        None, min_length=16, description="A key for /metrics alone (a Prometheus scraper); API keys work too."
    )
    max_queued_per_client: int = Field(
        4, ge=1, le=1024, description="Jobs one client (key, or address without keys) may have waiting; more get 429."
    )

    @model_validator(mode="after")
    def _remote_needs_an_upstream(self) -> Settings:
        if self.engine == "remote" and (self.remote_url is None or self.remote_model is None):
            raise ValueError("IMAGESENSE_ENGINE=remote needs IMAGESENSE_REMOTE_URL and IMAGESENSE_REMOTE_MODEL")
        return self

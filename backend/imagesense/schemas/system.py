"""Liveness, readiness and pool statistics."""

from typing import Literal

from pydantic import Field

from imagesense.schemas.base import ApiModel

ModelStatus = Literal["loading", "ready", "failed", "disabled"]


class Health(ApiModel):
    status: Literal["ok"] = "ok"


class ModelState(ApiModel):
    status: ModelStatus
    model: str | None = Field(description="Hub id or folder the service loads (hidden from callers without a key).")
    reason: str | None = Field(None, description="Why it is not ready, and how to fix it (hidden likewise).")
    dtype: str | None = None
    decode: str | None = Field(
        None,
        description='What a decode step runs on, e.g. "one C++ call a layer, the engine\'s int8 kernel" or '
        '"lean step, PyTorch\'s kernels" (IMAGESENSE_NATIVE_KERNELS).',
    )
    load_seconds: float | None = None


class StoreState(ApiModel):
    kind: Literal["memory", "redis"] = Field(description="Where uploads are kept (IMAGESENSE_STORE).")
    status: Literal["ready", "failed"]
    reason: str | None = Field(
        None, description="Why the shared store can't be used (hidden from callers without a key)."
    )


class Readiness(ApiModel):
    ready: bool = Field(description="At least one engine can take work.")
    shutting_down: bool = Field(False, description="The service is draining before it exits: no new work.")
    vlm: ModelState = Field(description="Qwen3-VL: OCR, describe, ask.")
    fast_ocr: ModelState = Field(description="PP-OCR: fast OCR with line boxes.")
    store: StoreState = Field(
        description="The upload store. A shared store that is down fails uploads and lookups with 503, "
        "not readiness: every replica shares it, so taking them all out of rotation would help nobody.",
    )


class PoolStats(ApiModel):
    max_concurrency: int
    active: int = Field(description="Jobs running now.")
    queued: int = Field(description="Jobs waiting for a worker.")
    queue_size: int = Field(description="Waiting jobs allowed before 429.")
    completed: int
    failed: int
    cancelled: int = Field(description="Ended by their clients (or by a shutdown).")
    timed_out: int = Field(description="Past IMAGESENSE_JOB_TIMEOUT_S, waiting or running.")
    peak_active: int = Field(description="Most jobs ever running at once (never above max_concurrency).")


class Stats(PoolStats):
    """The vision-language model's pool, and the fast OCR engine's own pool."""

    fast_ocr: PoolStats

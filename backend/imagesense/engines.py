"""The engines' life in the service: each loads on its own thread and reports its state honestly."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from imagesense.engine.cpu import cpu_cores
from imagesense.engine.loader import explain_load_failure
from imagesense.engine.protocol import OcrEngine, VisionLanguageEngine
from imagesense.engine.rapidocr import ENGINE_NAME, RapidOcrEngine
from imagesense.engine.remote import RemoteConfig, RemoteEngine
from imagesense.engine.transformers_engine import open_transformers_engine
from imagesense.errors import ModelUnavailable
from imagesense.schemas.system import ModelState, ModelStatus
from imagesense.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_WHILE_LOADING_S = 10


def thread_share(settings: Settings, active: Callable[[], int]) -> Callable[[], int]:
    """Torch threads for a generation now: IMAGESENSE_TORCH_THREADS if set, else the cores divided by the
    generations running (all of them for one alone, half each for two)."""
    if settings.torch_threads:
        fixed = settings.torch_threads
        return lambda: fixed
    cores = cpu_cores()
    return lambda: max(1, cores // max(1, active()))


class EngineRuntime(Generic[T]):
    """Loads one engine in the background; tasks ask it for the engine, or get a 503 with the reason."""

    def __init__(
        self,
        label: str,
        name: str,
        load: Callable[[], T],
        explain: Callable[[BaseException], str],
        enabled: bool = True,
        precision: Callable[[T], str | None] = lambda _engine: None,
        decode: Callable[[T], str | None] = lambda _engine: None,
        unavailable_reason: Callable[[T], str | None] = lambda _engine: None,
    ) -> None:
        self._label = label
        self._name = name
        self._load_engine = load
        self._explain = explain
        self._precision = precision
        self._decode = decode
        self._unavailable_reason = unavailable_reason
        self._status: ModelStatus = "loading" if enabled else "disabled"
        self._reason: str | None = f"loading {name}" if enabled else f"the {label} is disabled by configuration"
        self._engine: T | None = None
        self._load_seconds: float | None = None

    def start_loading(self) -> None:
        if self._status != "loading":
            return
        threading.Thread(target=self._load, name=f"imagesense-load-{self._label}", daemon=True).start()

    def _load(self) -> None:
        began = time.perf_counter()
        try:
            engine = self._load_engine()
        except Exception as exc:
            log.error("%s failed to load", self._label, exc_info=exc)
            self._reason = self._explain(exc)
            self._status = "failed"
            return
        self._load_seconds = time.perf_counter() - began
        self._engine = engine
        self._reason = None
        self._status = "ready"
        log.info("%s ready in %.1f s", self._label, self._load_seconds)

    def _why_not_ready(self) -> str | None:
        if self._engine is None:
            return self._reason
        return self._unavailable_reason(self._engine)

    @property
    def ready(self) -> bool:
        return self._why_not_ready() is None

    def get(self) -> T:
        if (reason := self._why_not_ready()) is not None or self._engine is None:
            # Worth a retry while it loads or an upstream is down; not when it failed or is disabled.
            later = self._status in ("loading", "ready")
            headers = {"Retry-After": str(RETRY_WHILE_LOADING_S)} if later else None
            raise ModelUnavailable(f"the {self._label} is not ready: {reason}", headers=headers)
        return self._engine

    def state(self) -> ModelState:
        reason = self._why_not_ready()
        status: ModelStatus = "failed" if self._status == "ready" and reason is not None else self._status
        return ModelState(
            status=status,
            model=self._name,
            reason=reason,
            dtype=self._precision(self._engine) if self._engine is not None else None,
            decode=self._decode(self._engine) if self._engine is not None else None,
            load_seconds=self._load_seconds,
        )


def vlm_runtime(settings: Settings, threads: Callable[[], int]) -> EngineRuntime[VisionLanguageEngine]:
    if settings.engine == "remote":
        return remote_runtime(settings)

    def load() -> VisionLanguageEngine:
        return open_transformers_engine(
            settings.model,
            dtype=settings.dtype,
            revision=settings.model_revision,
            quantization=settings.quantization,
            quantize_vision=settings.quantize_vision,
            native_kernels=settings.native_kernels,
            prefix_cache_bytes=settings.prefix_cache_mb * 2**20,
            threads=threads,
            warm_up=settings.warmup,
        )

    return EngineRuntime(
        "vision-language model",
        settings.model,
        load,
        lambda error: explain_load_failure(settings.model, error),
        enabled=settings.load_model,
        precision=lambda engine: engine.info.precision,
        decode=lambda engine: engine.info.decode,
        unavailable_reason=lambda engine: engine.unavailable_reason(),
    )


def remote_runtime(settings: Settings) -> EngineRuntime[VisionLanguageEngine]:
    """Generation on an OpenAI-compatible upstream: nothing to load but a first check that it answers."""
    config = RemoteConfig(
        url=settings.remote_url or "",  # Settings refuses remote without both
        model=settings.remote_model or "",
        api_key=settings.remote_api_key,
        connect_timeout_s=settings.remote_connect_timeout_s,
        idle_timeout_s=settings.remote_idle_timeout_s,
    )

    def load() -> VisionLanguageEngine:
        engine = RemoteEngine(config)
        engine.start()
        return engine

    return EngineRuntime(
        "vision-language model",
        f"{settings.remote_model} at {settings.remote_url}",
        load,
        lambda _error: f"the remote engine could not start (the log has the details); upstream {settings.remote_url}",
        precision=lambda _engine: "remote",
        unavailable_reason=lambda engine: engine.unavailable_reason(),
    )


def fast_ocr_runtime(settings: Settings) -> EngineRuntime[OcrEngine]:
    def load() -> OcrEngine:
        engine = RapidOcrEngine(threads=settings.fast_ocr_threads or cpu_cores())
        engine.warm_up()
        return engine

    def explain(_error: BaseException) -> str:
        return (
            "the fast OCR engine could not start (the log has the details). It needs the rapidocr and "
            "onnxruntime packages: pip install 'rapidocr>=3,<4' onnxruntime"
        )

    return EngineRuntime("fast OCR engine", ENGINE_NAME, load, explain, enabled=settings.fast_ocr)

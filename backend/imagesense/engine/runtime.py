"""The engines' life in the service: each loads on its own thread and reports its state honestly."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import torch

from imagesense.engine.fast_ocr import ENGINE_NAME, FastOcr
from imagesense.engine.generation import Generator
from imagesense.engine.loader import explain_load_failure, load_model
from imagesense.engine.prefix_cache import PrefixCache
from imagesense.errors import ModelUnavailable
from imagesense.schemas.system import ModelState, ModelStatus
from imagesense.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


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
    ) -> None:
        self._label = label
        self._name = name
        self._load_engine = load
        self._explain = explain
        self._status: ModelStatus = "loading" if enabled else "disabled"
        self._reason: str | None = f"loading {name}" if enabled else f"the {label} is disabled by configuration"
        self._engine: T | None = None
        self._load_seconds: float | None = None
        self.dtype: str | None = None

    def start_loading(self) -> None:
        if self._status != "loading":
            return
        threading.Thread(target=self._load, name=f"imagesense-load-{self._label}", daemon=True).start()

    def _load(self) -> None:
        began = time.perf_counter()
        try:
            engine = self._load_engine()
        except Exception as exc:  # noqa: BLE001 - any failure becomes the reported state
            log.error("%s failed to load: %r", self._label, exc)
            self._reason = self._explain(exc)
            self._status = "failed"
            return
        self._load_seconds = time.perf_counter() - began
        self._engine = engine
        self._reason = None
        self._status = "ready"
        log.info("%s ready in %.1f s", self._label, self._load_seconds)

    @property
    def ready(self) -> bool:
        return self._engine is not None

    def get(self) -> T:
        if self._engine is None:
            raise ModelUnavailable(f"the {self._label} is not ready: {self._reason}")
        return self._engine

    def state(self) -> ModelState:
        return ModelState(
            status=self._status,
            model=self._name,
            reason=self._reason,
            dtype=self.dtype,
            load_seconds=self._load_seconds,
        )


def vlm_runtime(settings: Settings) -> EngineRuntime[Generator]:
    runtime: EngineRuntime[Generator]

    def load() -> Generator:
        torch.set_num_threads(cpu_cores())
        loaded = load_model(
            settings.model, settings.dtype, settings.model_revision, settings.quantization, settings.quantize_vision
        )
        generator = Generator(loaded, PrefixCache(settings.prefix_cache_mb * 2**20))
        if settings.warmup:
            generator.warm_up()
        dtype = str(generator.loaded.dtype).removeprefix("torch.")
        runtime.dtype = dtype if loaded.quantization == "none" else f"{dtype}, {loaded.quantization}"
        return generator

    runtime = EngineRuntime(
        "vision-language model",
        settings.model,
        load,
        lambda error: explain_load_failure(settings.model, error),
        enabled=settings.load_model,
    )
    return runtime


def fast_ocr_runtime(settings: Settings) -> EngineRuntime[FastOcr]:
    def load() -> FastOcr:
        engine = FastOcr(threads=settings.fast_ocr_threads or cpu_cores())
        engine.warm_up()
        return engine

    def explain(error: BaseException) -> str:
        return (
            f"the fast OCR engine could not start ({type(error).__name__}: {error}). "
            "It needs the rapidocr and onnxruntime packages: pip install 'rapidocr>=3,<4' onnxruntime"
        )

    return EngineRuntime("fast OCR engine", ENGINE_NAME, load, explain, enabled=settings.fast_ocr)


def configure_torch_worker(settings: Settings) -> Callable[[], None]:
    """What each VLM pool thread runs at start: its share of the cores when every worker is busy."""
    share = settings.torch_threads or max(1, cpu_cores() // settings.max_concurrency)
    return lambda: torch.set_num_threads(share)

"""The model's life in the service: loaded in the background, its state reported honestly."""

from __future__ import annotations

import logging
import os
import threading
import time

import torch

from imagesense.engine.generation import Generator
from imagesense.engine.loader import explain_load_failure, load_model
from imagesense.errors import ModelUnavailable
from imagesense.schemas.system import ModelState, ModelStatus
from imagesense.settings import Settings

log = logging.getLogger(__name__)


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_worker(settings: Settings) -> int:
    """Split the cores between the workers so concurrent generations don't oversubscribe them."""
    if settings.torch_threads:
        return settings.torch_threads
    return max(1, cpu_cores() // settings.max_concurrency)


class ModelRuntime:
    """Loads the vision-language model on its own thread; tasks ask it for the generator."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._status: ModelStatus = "loading" if settings.load_model else "disabled"
        self._reason: str | None = None if settings.load_model else "model loading is disabled"
        self._generator: Generator | None = None
        self._load_seconds: float | None = None
        self._thread: threading.Thread | None = None

    def start_loading(self) -> None:
        if not self._settings.load_model:
            return
        self._reason = f"loading {self._settings.model}"
        self._thread = threading.Thread(target=self._load, name="imagesense-model-loader", daemon=True)
        self._thread.start()

    def wait_loaded(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _load(self) -> None:
        settings = self._settings
        began = time.perf_counter()
        torch.set_num_threads(cpu_cores())
        try:
            loaded = load_model(settings.model, settings.dtype, settings.model_revision)
            generator = Generator(loaded)
            if settings.warmup:
                generator.warm_up()
        except Exception as exc:  # noqa: BLE001 - any failure becomes the reported state
            log.error("model load failed: %r", exc)
            self._reason = explain_load_failure(settings.model, exc)
            self._status = "failed"
            return
        self._load_seconds = time.perf_counter() - began
        self._generator = generator
        self._reason = None
        self._status = "ready"
        log.info("model %s ready in %.1f s (%s)", settings.model, self._load_seconds, loaded.dtype)

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            raise ModelUnavailable(f"the vision-language model is not ready: {self._reason}")
        return self._generator

    def state(self) -> ModelState:
        dtype = str(self._generator.loaded.dtype).removeprefix("torch.") if self._generator else None
        return ModelState(
            status=self._status,
            model=self._settings.model,
            reason=self._reason,
            dtype=dtype,
            load_seconds=self._load_seconds,
        )

    def configure_worker_thread(self) -> None:
        """Run on each pool thread at start: its share of the cores for torch."""
        torch.set_num_threads(threads_per_worker(self._settings))

"""The application: wiring only. Objects live for the lifespan and are reached through dependencies."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from imagesense import __version__
from imagesense.api import api_router
from imagesense.api.openapi import add_stream_schemas
from imagesense.engines import fast_ocr_runtime, thread_share, vlm_runtime
from imagesense.errors import install_error_handlers
from imagesense.pool import WorkerPool
from imagesense.service import Engines, TaskService
from imagesense.settings import Settings
from imagesense.spa import mount_spa
from imagesense.store import ImageStore


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        vlm_pool = WorkerPool(settings.max_concurrency, settings.queue_size, settings.job_timeout_s)
        engines = Engines(
            # Each generation takes its share of the cores of the moment: all alone, half each when two run.
            vlm=vlm_runtime(settings, thread_share(settings, lambda: vlm_pool.active)),
            fast_ocr=fast_ocr_runtime(settings),
            vlm_pool=vlm_pool,
            # Fast OCR has a pool of its own: a one-second read must not wait behind minute-long generations.
            ocr_pool=WorkerPool(settings.fast_ocr_concurrency, settings.fast_ocr_queue_size, settings.job_timeout_s),
        )
        store = ImageStore(settings.store_max_images, settings.store_max_bytes)
        app.state.service = TaskService(settings, store, engines)
        engines.fast_ocr.start_loading()
        engines.vlm.start_loading()
        try:
            yield
        finally:
            engines.vlm_pool.shutdown()
            engines.ocr_pool.shutdown()

    app = FastAPI(
        title="ImageSense",
        version=__version__,
        description="Image understanding on a CPU: OCR, descriptions and questions about images.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"])
    app.include_router(api_router)
    add_stream_schemas(app)
    mount_spa(app, settings.static_dir)
    logging.getLogger("imagesense").setLevel(logging.INFO)
    return app

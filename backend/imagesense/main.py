"""The application: wiring only. Objects live for the lifespan and are reached through dependencies."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from imagesense import __version__
from imagesense.api import api_router
from imagesense.engine.runtime import ModelRuntime
from imagesense.errors import install_error_handlers
from imagesense.pool import WorkerPool
from imagesense.service import TaskService
from imagesense.settings import Settings
from imagesense.spa import mount_spa
from imagesense.store import ImageStore


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ModelRuntime(settings)
        pool = WorkerPool(
            settings.max_concurrency,
            settings.queue_size,
            settings.job_timeout_s,
            thread_initializer=runtime.configure_worker_thread,
        )
        store = ImageStore(settings.store_max_images, settings.store_max_bytes)
        app.state.service = TaskService(settings, store, pool, runtime)
        runtime.start_loading()
        try:
            yield
        finally:
            pool.shutdown()

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
    mount_spa(app, settings.static_dir)
    logging.getLogger("imagesense").setLevel(logging.INFO)
    return app

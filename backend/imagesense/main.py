"""The application: wiring only. Objects live for the lifespan and are reached through dependencies."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from imagesense import __version__
from imagesense.api import api_router
from imagesense.api.metrics import router as metrics_router
from imagesense.api.openai_compat import router as openai_router
from imagesense.api.openapi import add_stream_schemas
from imagesense.auth import ApiKeys
from imagesense.documents.pdf import Pdfium
from imagesense.documents.service import DocumentService
from imagesense.documents.store import DocumentStore
from imagesense.engines import fast_ocr_runtime, thread_share, vlm_runtime
from imagesense.errors import install_error_handlers
from imagesense.image_urls import ImageUrls
from imagesense.images import DecodedImage, decode_image
from imagesense.logs import configure_logging
from imagesense.metrics import Metrics
from imagesense.middleware import BodyLimit, BrowserGuard, HttpMetrics, KeyGate, RequestIds
from imagesense.pool import WorkerPool
from imagesense.schemas.openai_compat import MAX_CHAT_TEXT_BYTES, MAX_JSON_CONTAINERS
from imagesense.service import Engines, TaskService
from imagesense.settings import Settings
from imagesense.shared_store import BlockingCalls, RedisBlobs, SharedBlobs
from imagesense.spa import mount_spa
from imagesense.store import ImageStore

FORM_SLACK_BYTES = 1024 * 1024  # multipart framing, the question, the history
STORE_THREADS = 2  # shared-store calls at once (each may decode an image: memory several times its file)


def shared_blobs(settings: Settings) -> SharedBlobs | None:
    if settings.store == "memory":
        return None
    return RedisBlobs(settings.redis_url, settings.store_ttl_s, settings.shared_store_max_bytes)


def upload_decoder(settings: Settings) -> Callable[[bytes], DecodedImage]:
    """How a replica turns another replica's upload (bytes from the shared store) into its own copy."""
    return partial(decode_image, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        per_client = settings.max_queued_per_client
        vlm_pool = WorkerPool(settings.max_concurrency, settings.queue_size, settings.job_timeout_s, per_client, "vlm")
        engines = Engines(
            # Each generation takes its share of the cores of the moment: all alone, half each when two run.
            vlm=vlm_runtime(settings, thread_share(settings, lambda: vlm_pool.active)),
            fast_ocr=fast_ocr_runtime(settings),
            vlm_pool=vlm_pool,
            # Fast OCR has a pool of its own: a one-second read must not wait behind minute-long generations.
            ocr_pool=WorkerPool(
                settings.fast_ocr_concurrency,
                settings.fast_ocr_queue_size,
                settings.job_timeout_s,
                per_client,
                "fast-ocr",
            ),
        )
        shared = shared_blobs(settings)
        # The shared store's I/O and the decodes of other replicas' uploads: bounded, off the event loop.
        store_io = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="imagesense-store") if shared else None
        blocking = BlockingCalls(store_io)
        store = ImageStore(
            settings.store_max_images, settings.store_max_bytes, shared, upload_decoder(settings), blocking
        )
        app.state.service = service = TaskService(settings, store, engines, app.state.metrics)
        document_store = DocumentStore(settings.store_max_documents, settings.store_max_bytes, shared, blocking)
        app.state.documents = documents = DocumentService(service, document_store, Pdfium(settings.max_pdf_pages))
        app.state.image_urls = image_urls = ImageUrls(settings, service, documents)
        app.state.metrics.watch(service.live_state())
        engines.fast_ocr.start_loading()
        engines.vlm.start_loading()
        try:
            yield
        finally:  # after a graceful shutdown (serving.py) there is nothing left; else stop it now
            await asyncio.to_thread(app.state.service.shut_down, 0.0)
            await image_urls.close()
            if store_io is not None:
                store_io.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="ImageSense",
        version=__version__,
        description="Image understanding on a CPU: OCR, descriptions and questions about images.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"])
    app.state.keys = keys = ApiKeys.from_settings(settings)  # at start: a missing key file fails now
    app.state.metrics = Metrics()  # the app's own registry, not prometheus-client's global one
    app.add_middleware(
        BodyLimit,
        max_bytes=max_request_bytes(settings),
        json_max_bytes=max_json_request_bytes(settings),
        json_max_containers=MAX_JSON_CONTAINERS,
    )
    app.add_middleware(KeyGate, keys=keys)  # outside BodyLimit: no key, no reading, whatever the size
    app.add_middleware(
        BrowserGuard, allowed_hosts=allowed_hosts(settings), origins=settings.cors_origins, keys_enabled=keys.enabled
    )
    app.add_middleware(HttpMetrics, metrics=app.state.metrics)
    app.add_middleware(RequestIds)  # outermost: every response, error or not, carries the request id
    app.include_router(api_router)
    app.include_router(openai_router)
    app.include_router(metrics_router)
    add_stream_schemas(app)
    mount_spa(app, settings.static_dir)
    return app


def allowed_hosts(settings: Settings) -> list[str]:
    """IMAGESENSE_ALLOWED_HOSTS, or the loopback names and the bound address."""
    if settings.allowed_hosts:
        return settings.allowed_hosts
    bound = [] if settings.host in ("0.0.0.0", "::") else [settings.host]
    return ["localhost", "127.0.0.1", "::1", *bound]


def max_request_bytes(settings: Settings) -> int:
    """The largest request body: every image a request may carry at the largest size, plus the form."""
    return settings.max_images_per_request * settings.max_upload_bytes + FORM_SLACK_BYTES


def max_json_request_bytes(settings: Settings) -> int:
    """The largest /v1 body: every image a request may carry at the largest size in base64, plus its text."""
    return settings.max_images_per_request * math.ceil(settings.max_upload_bytes * 4 / 3) + MAX_CHAT_TEXT_BYTES

"""HTTP and WebSocket routers, one per resource, all under /api/v1."""

from fastapi import APIRouter

from imagesense.api import ask, describe, documents, estimate, extract, images, ocr, stream, system

api_router = APIRouter(prefix="/api/v1")
for module in (system, images, documents, ocr, describe, ask, extract, estimate, stream):
    api_router.include_router(module.router)

"""Liveness, readiness and pool statistics."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from imagesense.api.deps import ServiceDep
from imagesense.schemas.system import Health, PoolStats, Readiness

router = APIRouter(tags=["system"])


@router.get("/health")
async def health() -> Health:
    """The process is alive (says nothing about the model)."""
    return Health()


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(service: ServiceDep) -> JSONResponse:
    """200 when the model is loaded; 503 with the reason while loading or when it could not be loaded."""
    state = service.runtime.state()
    readiness = Readiness(ready=state.status == "ready", vlm=state)
    return JSONResponse(readiness.model_dump(), status_code=200 if readiness.ready else 503)


@router.get("/stats")
async def stats(service: ServiceDep) -> PoolStats:
    return service.pool.stats()

"""Liveness, readiness and pool statistics."""

import asyncio
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from imagesense.api.deps import ServiceDep, authenticate, error_responses, identify
from imagesense.auth import Client
from imagesense.schemas.system import Health, PoolStats, Readiness, Stats, StoreState

router = APIRouter(tags=["system"])


@router.get("/health")
async def health() -> Health:
    """The process is alive (says nothing about the model)."""
    return Health()


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}, **error_responses(422)})
async def ready(
    service: ServiceDep,
    caller: Annotated[Client | None, Depends(identify)],
    engine: Annotated[Literal["any", "vlm", "fast_ocr"], Query(description="Which engine must be ready.")] = "any",
) -> JSONResponse:
    """Each engine's state. 200 when the engine asked for (by default: any engine) can take work; 503 with
    the reasons while loading or when an engine could not be loaded."""
    engines = service.engines
    vlm, fast_ocr = engines.vlm.state(), engines.fast_ocr.state()
    wanted = {"any": engines.vlm.ready or engines.fast_ocr.ready, "vlm": engines.vlm.ready}
    is_ready = wanted.get(engine, engines.fast_ocr.ready) and not service.shutting_down
    if caller is None:  # keys are on and this is a probe, or anyone: states, never model paths or reasons
        vlm, fast_ocr = (state.model_copy(update={"model": None, "reason": None}) for state in (vlm, fast_ocr))
    problem = await asyncio.to_thread(service.store.problem)  # a Redis that is gone takes up to a second
    store = StoreState(
        kind=service.settings.store,
        status="failed" if problem else "ready",
        reason=problem if caller is not None else None,
    )
    readiness = Readiness(ready=is_ready, shutting_down=service.shutting_down, vlm=vlm, fast_ocr=fast_ocr, store=store)
    return JSONResponse(readiness.model_dump(), status_code=200 if is_ready else 503)


@router.get("/stats", dependencies=[Depends(authenticate)], responses=error_responses(401))
async def stats(service: ServiceDep) -> Stats:
    vlm = asdict(service.engines.vlm_pool.stats())
    return Stats(**vlm, fast_ocr=PoolStats(**asdict(service.engines.ocr_pool.stats())))

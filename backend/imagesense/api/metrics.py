"""GET /metrics: Prometheus text format. With API keys on, it needs one of them or IMAGESENSE_METRICS_KEY;
without keys, only IMAGESENSE_METRICS_KEY when that is set."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from imagesense.api.deps import address_of, get_keys
from imagesense.auth import ApiKeys, bearer_token
from imagesense.errors import Unauthorized
from imagesense.metrics import Metrics
from imagesense.settings import Settings

router = APIRouter(tags=["system"])


def _allowed(request: Request) -> bool:
    settings: Settings = request.app.state.service.settings
    presented = bearer_token(request.headers.get("authorization"))
    if settings.metrics_key and presented and ApiKeys([settings.metrics_key]).name_of(presented) is not None:
        return True  # the same constant-time digest comparison as for the API keys
    keys = get_keys(request)
    if keys.enabled:
        return keys.client(presented, address_of(request), required=False) is not None
    return settings.metrics_key is None


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    if not _allowed(request):
        raise Unauthorized("/metrics needs a key: Authorization: Bearer <key>", headers={"WWW-Authenticate": "Bearer"})
    registry = request.app.state.metrics
    assert isinstance(registry, Metrics)
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)

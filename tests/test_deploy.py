"""The deployment files agree with the service's own settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

from imagesense.main import max_request_bytes
from imagesense.settings import Settings

NGINX = Path(__file__).resolve().parents[1] / "frontend" / "nginx.conf"


def test_nginx_allows_exactly_the_backends_largest_request_and_answers_413_in_the_api_shape() -> None:
    conf = NGINX.read_text()
    limit = max_request_bytes(Settings(load_model=False))
    [megabytes] = re.findall(r"client_max_body_size (\d+)m;", conf)
    assert int(megabytes) * 1024 * 1024 == limit
    [body] = re.findall(r"return 413 '(.*)';", conf)
    error = json.loads(body.replace("$request_id", "nginx-id"))["error"]
    assert error["code"] == "payload_too_large"
    assert str(limit) in error["message"]
    assert set(error) == {"code", "message", "field", "request_id"}

"""The deployment files agree with the service's own settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from imagesense.main import max_request_bytes
from imagesense.settings import Settings
from support import service

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


def test_the_grafana_dashboard_shows_only_metrics_the_service_exports(tiny_checkpoint: Path) -> None:
    dashboard = json.loads((NGINX.parents[1] / "deploy" / "grafana" / "imagesense.json").read_text())
    used = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"imagesense_\w+", target["expr"])
    }
    with service(tiny_checkpoint, fast_ocr=False) as client:
        exported = {family.name for family in text_string_to_metric_families(client.get("/metrics").text)}
    exported |= {f"{name}_total" for name in exported}  # counters are exported by their base name
    assert used
    assert used <= exported, used - exported


def test_every_setting_the_deployments_name_exists() -> None:
    """A misspelt IMAGESENSE_ variable is ignored silently by the service: the files must not have one."""
    root = NGINX.parents[1]
    files = [
        root / "docker-compose.yml",
        root / "deploy" / "compose.vllm.yml",
        *(root / "deploy" / "k8s").glob("*.yaml"),
    ]
    named = {name for path in files for name in re.findall(r"^\s*IMAGESENSE_([A-Z0-9_]+): ", path.read_text(), re.M)}
    known = {name.upper() for name in Settings.model_fields}
    assert named, "no settings found: the pattern is wrong"
    assert named <= known, named - known


def test_the_kubernetes_probes_ask_the_service_what_it_answers(tiny_checkpoint: Path) -> None:
    backend = (NGINX.parents[1] / "deploy" / "k8s" / "backend.yaml").read_text()
    paths = set(re.findall(r"path: (/api/v1/\w+)", backend))
    assert paths == {"/api/v1/health", "/api/v1/ready"}
    with service(tiny_checkpoint, fast_ocr=False) as client:
        assert all(client.get(path).status_code == 200 for path in paths)

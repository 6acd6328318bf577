"""The web app's nginx (frontend/nginx.conf), run for real (Debian's nginx) in front of two stand-in
replicas: requests naming an image — by header, or by ?image= on the stream — always reach the same
replica; requests naming none are spread over both."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from imagesense.cli import main
from imagesense.devtools.loopback import free_port
from imagesense.store import content_id
from support import image_bytes

NGINX_CONF = Path(__file__).resolve().parents[1] / "frontend" / "nginx.conf"


def replica(name: str, seen: list[str | None]) -> ThreadingHTTPServer:
    """Answers with its name; a POST (the CLI's task) as a result whose text is its name."""

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(name.encode(), "text/plain")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers.get("X-ImageSense-Image"))
            self._answer(json.dumps({"text": name}).encode(), "application/json")

        def _answer(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


SEEN: list[str | None] = []  # the route header of each POST the stand-in replicas received


@pytest.fixture(scope="module")
def balancer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("nginx") is None:
        pytest.fail("this test runs the real nginx: apt-get install nginx-light (.ci/run does)")
    replicas = [replica("first", SEEN), replica("second", SEEN)]
    port, root = free_port(), tmp_path_factory.mktemp("nginx")
    servers = "".join(f"    server 127.0.0.1:{server.server_address[1]};\n" for server in replicas)
    site = NGINX_CONF.read_text()
    site, swapped = re.subn(r"    server backend:8000[^;]*;\n", servers, site)
    assert swapped == 1
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    (root / "nginx.conf").write_text(
        f"pid {root}/nginx.pid;\nerror_log {root}/error.log;\nevents {{}}\n"
        f"http {{\naccess_log off;\nclient_body_temp_path {root};\nproxy_temp_path {root};\n{site}\n}}\n"
    )
    process = subprocess.Popen(["nginx", "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(f"{url}/api/v1/health", timeout=1)
            break
        except httpx.HTTPError:
            assert process.poll() is None, (root / "error.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        for server in replicas:
            server.shutdown()


def test_one_image_always_reaches_the_same_replica(balancer: str) -> None:
    for image in ("a" * 32, "b" * 32, "0123456789abcdef0123456789abcdef"):
        by_header = {httpx.get(f"{balancer}/api/v1/x", headers={"X-ImageSense-Image": image}).text for _ in range(8)}
        by_query = {httpx.get(f"{balancer}/api/v1/stream", params={"image": image}).text for _ in range(4)}
        assert len(by_header) == 1
        assert by_query == by_header  # the stream's ?image= routes as the header does


def test_images_and_requests_naming_none_are_spread(balancer: str) -> None:
    images = Counter(
        httpx.get(f"{balancer}/api/v1/x", headers={"X-ImageSense-Image": f"{n:032x}"}).text for n in range(40)
    )
    anonymous = Counter(httpx.get(f"{balancer}/api/v1/health").text for _ in range(40))
    assert set(images) == set(anonymous) == {"first", "second"}


def test_the_command_line_names_its_file_so_it_always_reaches_one_replica(
    balancer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = tmp_path / "photo.png"
    picture.write_bytes(image_bytes(color="teal"))
    answers = set()
    for _ in range(4):
        with pytest.raises(SystemExit) as exit_status:
            main(["describe", str(picture), "--server", balancer])
        assert exit_status.value.code == 0
        answers.add(capsys.readouterr().out.strip())
    assert len(answers) == 1
    assert SEEN[-4:] == [content_id(picture.read_bytes())] * 4  # the upload's id, known before the upload

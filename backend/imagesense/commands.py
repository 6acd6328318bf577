"""One-shot tasks from the command line: `imagesense ocr|describe|ask|extract FILE...`.

They speak HTTP to a running server (``--server``, the key from IMAGESENSE_API_KEY), or, without one,
to the service started in this process (the same app, the same limits). Text goes to stdout (``--json``
for the whole result), progress to stderr. Exit codes: 0 done, 2 bad input (a missing file, a 4xx),
3 the server failed or could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import httpx

from imagesense.documents.pages import select_pages
from imagesense.documents.pdf import is_pdf
from imagesense.schemas.images import ROUTE_HEADER
from imagesense.store import content_id

BAD_INPUT, SERVER_FAILED = 2, 3
API = "/api/v1"


class Response(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


class Http(Protocol):
    """httpx's client, or the in-process app's test client (the same calls, another httpx)."""

    def get(self, url: str) -> Response: ...
    def post(
        self,
        url: str,
        *,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response: ...


class TaskFailed(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextmanager
def connect(server: str | None, timeout_s: float) -> Iterator[Http]:
    """A client of ``server``, or of the service run in this process until the block ends."""
    if server:
        key = os.environ.get("IMAGESENSE_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        with httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout_s) as client:
            yield client
        return
    from fastapi.testclient import TestClient

    from imagesense.main import create_app
    from imagesense.settings import Settings

    settings = Settings(allowed_hosts=["testserver"], static_dir=Path("/nonexistent"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wait_until_loaded(client, timeout_s)
        yield client


def wait_until_loaded(client: Http, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    print("loading the model in this process…", file=sys.stderr)
    while time.monotonic() < deadline:
        engines = client.get(f"{API}/ready").json()
        if all(engines[name]["status"] != "loading" for name in ("vlm", "fast_ocr")):
            return
        time.sleep(0.2)
    raise TaskFailed("the model did not load in time", SERVER_FAILED)


def _checked(response: Response) -> dict[str, Any]:
    body: dict[str, Any] = (
        response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    )
    if response.status_code < 400:
        return body
    error = body.get("error", {})
    message = f"{response.status_code} {error.get('code', '')}: {error.get('message', response.text[:200])}"
    raise TaskFailed(
        message, BAD_INPUT if response.status_code < 500 and response.status_code != 429 else SERVER_FAILED
    )


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TaskFailed(f"{path}: {exc.strerror}", BAD_INPUT) from None


def _form(args: argparse.Namespace) -> dict[str, str]:
    form = {"max_new_tokens": str(args.max_new_tokens)} if args.max_new_tokens else {}
    return form | ({"password": args.password} if args.password else {})


def ocr_file(client: Http, path: str, args: argparse.Namespace) -> dict[str, Any]:
    """A PDF page by page (progress on stderr), an image in one request."""
    data = _read(path)
    route = {ROUTE_HEADER: content_id(data)}  # replicas: every request about this file to the same one
    if not is_pdf(data):
        files = {"file": (Path(path).name, data)}
        return _checked(client.post(f"{API}/ocr", files=files, data=_form(args), headers=route))
    files = {"file": (Path(path).name, data)}
    document = _checked(client.post(f"{API}/documents", files=files, data=_form(args), headers=route))
    numbers = select_pages(args.pages, len(document["pages"]))
    results = []
    for done, number in enumerate(numbers, start=1):
        form = {"document_id": document["document_id"], "pages": str(number)}
        results.append(_checked(client.post(f"{API}/ocr", data=form, headers=route)))
        print(f"{path}: page {done} of {len(numbers)}", file=sys.stderr)
    merged = results[0] | {"pages": [page for result in results for page in result["pages"]]}
    merged["text"] = "\n\n".join(result["text"] for result in results)
    return merged


def run_task(client: Http, args: argparse.Namespace, path: str) -> dict[str, Any]:
    if args.command == "ocr":
        return ocr_file(client, path, args)
    data = _read(path)
    files = {("files" if args.command == "ask" else "file"): (Path(path).name, data)}
    form = _form(args) | ({"pages": args.pages} if args.pages else {})
    if args.command == "describe":
        form["detail"] = args.detail
    elif args.command == "ask":
        form["question"] = args.question
    elif args.command == "extract":
        form |= {"preset": args.preset} if args.preset else {"json_schema": _read(args.schema).decode()}
    route = {ROUTE_HEADER: content_id(data)}
    return _checked(client.post(f"{API}/{args.command}", files=files, data=form, headers=route))


def _output(args: argparse.Namespace, result: dict[str, Any]) -> str:
    """The text of a result; extract prints its data; --json the whole result."""
    if args.json:
        return json.dumps(result, ensure_ascii=False, indent=2)
    if args.command == "extract":
        return json.dumps(result["data"], ensure_ascii=False, indent=2)
    return str(result["text"])


def main(args: argparse.Namespace) -> int:
    try:
        with connect(args.server, args.timeout) as client:
            for path in args.files:
                result = run_task(client, args, path)
                output = result["data"] if args.command == "extract" and not args.json else result
                print(
                    json.dumps(output, ensure_ascii=False, indent=2)
                    if args.json or args.command == "extract"
                    else result["text"]
                )
    except TaskFailed as failed:
        print(f"imagesense {args.command}: {failed}", file=sys.stderr)
        return failed.exit_code
    except (httpx.HTTPError, OSError) as exc:
        print(f"imagesense {args.command}: the server could not be reached ({exc})", file=sys.stderr)
        return SERVER_FAILED
    return 0


def add_commands(commands: Any) -> None:
    """The one-shot task commands, on the main parser's subcommands."""
    for name, help_text in [
        ("ocr", "the text of images and PDFs"),
        ("describe", "a description of an image (or a PDF's pages)"),
        ("ask", "an answer about an image (or a PDF's pages)"),
        ("extract", "fields as JSON, from a preset or a JSON schema"),
    ]:
        task = commands.add_parser(name, help=help_text)
        task.add_argument("files", nargs="+" if name == "ocr" else 1, metavar="FILE")
        task.add_argument(
            "--server",
            default=os.environ.get("IMAGESENSE_SERVER"),
            help="e.g. http://127.0.0.1:8000 (IMAGESENSE_SERVER; key: IMAGESENSE_API_KEY); none: run in-process",
        )
        task.add_argument("--json", action="store_true", help="the whole result as JSON")
        task.add_argument("--pages", help='PDF pages, e.g. "1-3,5"')
        task.add_argument("--password", help="for an encrypted PDF")
        task.add_argument("--max-new-tokens", type=int)
        task.add_argument("--timeout", type=float, default=600.0, help="seconds for each request")
        if name == "describe":
            task.add_argument("--detail", choices=["brief", "detailed"], default="brief")
        if name == "ask":
            task.add_argument("-q", "--question", required=True)
        if name == "extract":
            chosen = task.add_mutually_exclusive_group(required=True)
            chosen.add_argument("--preset", choices=["invoice", "receipt", "business_card", "product_page", "table"])
            chosen.add_argument("--schema", help="a file holding a JSON schema")
        task.set_defaults(func=lambda parsed: sys.exit(main(parsed)))

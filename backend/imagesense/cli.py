"""`imagesense` command line: serve, download, build-checkpoint, build-kernels, openapi, and the benchmarks."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def serve(args: argparse.Namespace) -> None:
    from imagesense.main import create_app
    from imagesense.serving import serve as run_server
    from imagesense.settings import Settings

    overrides = {key: value for key in ("host", "port", "model") if (value := getattr(args, key)) is not None}
    settings = Settings(**overrides)
    run_server(create_app(settings), settings)


def download(args: argparse.Namespace) -> None:
    """Fetch a checkpoint into the Hugging Face cache (progress bars from huggingface_hub)."""
    from huggingface_hub import snapshot_download

    from imagesense.settings import Settings

    settings = Settings()
    model = args.model or settings.model
    revision = args.revision or (settings.model_revision if model == settings.model else None)
    path = snapshot_download(model, revision=revision)
    print(f"{model} is in the cache: {path}")


def build_checkpoint(args: argparse.Namespace) -> None:
    from imagesense.devtools.checkpoint import build_checkpoint as build
    from imagesense.devtools.checkpoint import cached_checkpoint

    if args.cached:  # print only the path, for scripts: $(imagesense build-checkpoint .cache --cached)
        print(cached_checkpoint(Path(args.out), args.architecture))
        return
    out = build(Path(args.out), args.architecture)
    print(f"random-weight {args.architecture} Qwen3-VL checkpoint written to {out}")


def build_kernels(_args: argparse.Namespace) -> None:
    """Compile the engine's CPU kernels ahead (the first start would otherwise spend ~20 s on it)."""
    import logging

    from imagesense.engine.native import load_kernels

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reason = load_kernels()
    if reason:
        print(f"the engine's CPU kernels are not available: {reason}; it runs on PyTorch's kernels")
        raise SystemExit(1)
    print("the engine's CPU kernels are built and load")


def openapi(args: argparse.Namespace) -> None:
    """Write the OpenAPI spec without loading the model."""
    from imagesense.main import create_app
    from imagesense.settings import Settings

    spec = create_app(Settings(load_model=False)).openapi()
    text = json.dumps(spec, indent=2, ensure_ascii=False) + "\n"
    if args.out == "-":
        print(text, end="")
    else:
        Path(args.out).write_text(text, encoding="utf-8")


def bench_ocr(args: argparse.Namespace) -> None:
    from imagesense.devtools.bench_ocr import run

    run(args.engines.split(","), args.model, args.repeats, args.max_new_tokens, args.threads)


def bench(args: argparse.Namespace) -> None:
    from imagesense.devtools.bench_report import Peers
    from imagesense.devtools.bench_speed import main as run_bench

    exports = [Path(folder) for folder in args.openvino.split(",")] if args.openvino else []
    peers = Peers(args.openvino_python, exports) if exports else None
    run_bench(args.tiny, args.checkpoint, args.new_tokens, args.profiles, not args.skip_naive, peers)


def bench_limits(args: argparse.Namespace) -> None:
    from imagesense.devtools.bench_limits import main as run_bench

    run_bench(args.tiny, args.checkpoint)


def bench_json(args: argparse.Namespace) -> None:
    from imagesense.devtools.bench_json import main as run_bench

    run_bench(args.tiny, args.checkpoint, args.new_tokens, args.repeats)


def bench_documents(args: argparse.Namespace) -> None:
    from imagesense.devtools.bench_documents import main as run_bench

    run_bench(args.checkpoint, args.repeats, args.new_tokens)


def bench_replicas(args: argparse.Namespace) -> None:
    from imagesense.devtools.bench_replicas import main as run_bench

    run_bench(args.checkpoint, [int(count) for count in args.replicas.split(",")], args.requests, args.new_tokens)


def add_commands(commands: Any) -> None:
    from imagesense.commands import add_commands as add_task_commands

    add_task_commands(commands)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="imagesense", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="run the API (and the SPA when built)")
    run.add_argument("--host", help="bind address (IMAGESENSE_HOST)")
    run.add_argument("--port", type=int, help="port (IMAGESENSE_PORT)")
    run.add_argument("--model", help="hub id or local folder (IMAGESENSE_MODEL)")
    run.set_defaults(func=serve)

    fetch = commands.add_parser("download", help="fetch the model into the Hugging Face cache")
    fetch.add_argument("--model", help="hub id (default: IMAGESENSE_MODEL)")
    fetch.add_argument("--revision", help="branch, tag or commit (default: IMAGESENSE_MODEL_REVISION)")
    fetch.set_defaults(func=download)

    build = commands.add_parser("build-checkpoint", help="write a random-weight Qwen3-VL checkpoint, offline")
    build.add_argument("out", help="output folder")
    build.add_argument("--architecture", choices=["tiny", "2b"], default="tiny")
    build.add_argument("--cached", action="store_true", help="OUT is a cache folder: build once, print the path")
    build.set_defaults(func=build_checkpoint)

    kernels = commands.add_parser("build-kernels", help="compile the engine's CPU kernels ahead of the first start")
    kernels.set_defaults(func=build_kernels)

    spec = commands.add_parser("openapi", help="write the OpenAPI spec (no model needed)")
    spec.add_argument("--out", default="-", help="file to write, or - for stdout")
    spec.set_defaults(func=openapi)

    add_commands(commands)
    add_benchmarks(commands)
    return root


def add_benchmarks(commands: Any) -> None:
    speed = commands.add_parser("bench", help="naive pipeline vs the engine on the real 2B architecture")
    speed.add_argument("--tiny", action="store_true", help="the tiny test checkpoint: a smoke run in seconds")
    speed.add_argument("--checkpoint", help="a checkpoint folder (default: random 2B weights, built once)")
    speed.add_argument("--new-tokens", type=int, help="tokens per generation (default 64; 8 with --tiny)")
    speed.add_argument("--profiles", default="all", help="comma-separated quantization profiles, or all")
    speed.add_argument("--skip-naive", action="store_true", help="leave out the naive float32 pipeline")
    speed.add_argument("--openvino", help="OpenVINO export folders (comma-separated): adds the peer's rows")
    speed.add_argument(
        "--openvino-python", default="python3", help="the Python of OpenVINO's own virtualenv (shared notes)"
    )
    speed.set_defaults(func=bench)

    limits = commands.add_parser("bench-limits", help="cancel inside prefill, and decoding hostile images")
    limits.add_argument("--tiny", action="store_true", help="the tiny test checkpoint and small images: seconds")
    limits.add_argument("--checkpoint", help="a checkpoint folder (default: random 2B weights, built once)")
    limits.set_defaults(func=bench_limits)

    constrained = commands.add_parser("bench-json", help="JSON-schema constraining: compile time, cost per token")
    constrained.add_argument("--tiny", action="store_true", help="the tiny test checkpoint: seconds")
    constrained.add_argument("--checkpoint", help="a checkpoint folder (default: random 2B weights, built once)")
    constrained.add_argument("--new-tokens", type=int, help="tokens per run (default 192; 160 with --tiny)")
    constrained.add_argument("--repeats", type=int, default=2, help="runs of each kind, interleaved")
    constrained.set_defaults(func=bench_json)

    documents = commands.add_parser("bench-documents", help="PDF page costs by source; what OCR text adds to extract")
    documents.add_argument("--checkpoint", help="a checkpoint folder (default: the tiny test checkpoint)")
    documents.add_argument("--repeats", type=int, default=3, help="OCR runs of the sample PDF (median)")
    documents.add_argument("--new-tokens", type=int, default=160, help="extract: tokens per answer")
    documents.set_defaults(func=bench_documents)

    ocr = commands.add_parser("bench-ocr", help="latency and character error rate of each OCR engine")
    ocr.add_argument("--engines", default="fast", help="comma-separated: fast, vlm")
    ocr.add_argument("--model", help="checkpoint for the vlm engine (hub id or folder)")
    ocr.add_argument("--repeats", type=int, default=3, help="reads per page for the fast engine (median)")
    ocr.add_argument("--max-new-tokens", type=int, default=128, help="vlm: tokens per page")
    ocr.add_argument("--threads", type=int, default=2, help="fast engine: ONNX Runtime threads")
    ocr.set_defaults(func=bench_ocr)

    replicas = commands.add_parser("bench-replicas", help="throughput of one replica vs several (loopback, Redis)")
    replicas.add_argument("--checkpoint", help="model for the replicas (default: the tiny test checkpoint)")
    replicas.add_argument("--replicas", default="1,2", help="replica counts to compare, comma-separated")
    replicas.add_argument("--requests", type=int, default=24, help="requests per task and replica count")
    replicas.add_argument("--new-tokens", type=int, default=16, help="describe: tokens per answer")
    replicas.set_defaults(func=bench_replicas)


def main(argv: Sequence[str] | None = None) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parser().parse_args(argv)
    args.func(args)

#!/usr/bin/env bash
# Backend for the browser tests: the tiny random-weight checkpoint, the built app, long generations allowed.
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${1:-8765}
model=$(.venv/bin/imagesense build-checkpoint .cache --cached)
export IMAGESENSE_MODEL="$model" IMAGESENSE_PORT="$port" IMAGESENSE_STATIC_DIR=frontend/dist \
  IMAGESENSE_REPETITION_GUARD=false IMAGESENSE_MAX_NEW_TOKENS_LIMIT=8192
exec .venv/bin/imagesense serve

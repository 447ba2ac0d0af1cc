#!/usr/bin/env bash
# README command (a): install what is missing, fetch the models, build twin in
# release mode, launch it. Arguments go to twin (e.g. `bash scripts/run.sh --home /tmp/twin-try`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
# The one ggml llama.cpp and whisper.cpp share (cached across clones).
bash scripts/build-ggml.sh
# The models go where this twin will look: --home DIR (or TWIN_HOME) puts them
# under DIR/data/models; TWIN_MODELS_DIR wins over both.
home="${TWIN_HOME:-}"
prev=""
for arg in "$@"; do
  case "$arg" in
    --home=*) home="${arg#--home=}" ;;
    *) [ "$prev" = "--home" ] && home="$arg" ;;
  esac
  prev="$arg"
done
TWIN_HOME="$home" bash scripts/fetch-models.sh || echo "run: continuing without the models; chat needs them (bash scripts/fetch-models.sh)" >&2
cargo build --release --locked
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/twin" "$@"

#!/usr/bin/env bash
# README command (b): install what is missing, then run the whole test suite.
# Tests build in release mode, so they share the build of scripts/run.sh.
# The real models are fetched once into a shared cache (TWIN_MODELS_DIR, default
# ~/.cache/twin/models); tests that need them skip with a reason when they are
# absent (offline), everything else runs on tiny models the tests synthesize.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
# The one ggml llama.cpp and whisper.cpp share (cached across clones).
bash scripts/build-ggml.sh
export TWIN_MODELS_DIR="${TWIN_MODELS_DIR:-$HOME/.cache/twin/models}"
bash scripts/fetch-models.sh || echo "test: continuing without the real models; the tests that need them skip" >&2
cargo test --release --locked "$@"

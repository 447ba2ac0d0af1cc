#!/usr/bin/env bash
# README command (a): install what is missing, build twin in release mode, launch it.
# Arguments go to twin (e.g. `bash scripts/run.sh --home /tmp/twin-try`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/twin" "$@"

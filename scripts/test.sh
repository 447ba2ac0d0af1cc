#!/usr/bin/env bash
# README command (b): install what is missing, then run the whole test suite.
# Tests build in release mode, so they share the build of scripts/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo test --release --locked "$@"

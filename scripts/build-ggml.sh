#!/usr/bin/env bash
# Build the one ggml that llama.cpp (llama-cpp-2) and whisper.cpp (whisper-rs)
# share inside twin, and point the repository's `.ggml` link at it.
#
# Both crates bundle their own static ggml; linked together they clash
# (duplicate symbols), so twin builds the ggml vendored in llama-cpp-sys-2 once,
# as static PIC libraries, and builds both crates against it
# (`system-ggml-static`, `WHISPER_USE_SYSTEM_GGML`; see .cargo/config.toml and
# build.rs). The result is cached outside the clone, keyed by the ggml sources
# and the flags below, so fresh clones (CI) reuse it:
#   $TWIN_GGML_CACHE, else $CARGO_TARGET_DIR/ggml, else ~/.cache/twin/ggml.
# Run again, it only re-links `.ggml`. `--cuda` builds a CUDA ggml (for
# `cargo build --features cuda`; needs the CUDA toolkit).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export PATH="$HOME/.cargo/bin:$PATH"

cuda=OFF
for arg in "$@"; do
  case "$arg" in
    --cuda) cuda=ON ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-ggml: unknown argument $arg" >&2; exit 2 ;;
  esac
done

# The ggml sources: the ones llama-cpp-sys-2 (pinned in Cargo.lock) vendors.
version=$(awk '/^name = "llama-cpp-sys-2"/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
[ -n "$version" ] || { echo "build-ggml: llama-cpp-sys-2 is not in Cargo.lock" >&2; exit 1; }
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
find_src() { ls -d "$cargo_home"/registry/src/*/"llama-cpp-sys-2-$version" 2>/dev/null | head -n1; }
src=$(find_src)
if [ -z "$src" ]; then
  cargo fetch --locked >/dev/null
  src=$(find_src)
fi
[ -n "$src" ] && [ -d "$src/llama.cpp/ggml" ] || { echo "build-ggml: no sources of llama-cpp-sys-2 $version under $cargo_home/registry/src (cargo fetch)" >&2; exit 1; }

# The wider instruction sets of the CPU building it, named one by one (ggml
# runs its matrix products in them: embeddings, prompt processing, whisper).
# Everything is built from source on the machine that runs it; set
# TWIN_GGML_PORTABLE=1 to build the AVX2 baseline only (a binary to copy to
# another machine). The flags are part of the cache key below.
cpu_flags=()
if [ "${TWIN_GGML_PORTABLE:-0}" != 1 ] && [ -r /proc/cpuinfo ]; then
  have=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  has() { case "$have" in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
  if has avx512f && has avx512cd && has avx512vl && has avx512dq && has avx512bw; then
    cpu_flags+=(-DGGML_AVX512=ON)
    has avx512vbmi && cpu_flags+=(-DGGML_AVX512_VBMI=ON)
    has avx512_vnni && cpu_flags+=(-DGGML_AVX512_VNNI=ON)
    has avx512_bf16 && cpu_flags+=(-DGGML_AVX512_BF16=ON)
  fi
  has avx_vnni && cpu_flags+=(-DGGML_AVX_VNNI=ON)
fi

# Portable AVX2 baseline: GGML_NATIVE=OFF (never -march=native: ggml's AMX
# code crashes with it on some CPUs). llamafile's kernels keep prompt speed
# (~30 % slower without). OpenMP as llama-cpp-2's `openmp` feature.
flags=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=OFF
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON
  -DGGML_NATIVE=OFF
  -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
  "${cpu_flags[@]}"
  -DGGML_OPENMP=ON
  -DGGML_LLAMAFILE=ON
  -DGGML_CUDA="$cuda"
  -DGGML_METAL=OFF
  -DGGML_BUILD_TESTS=OFF
  -DGGML_BUILD_EXAMPLES=OFF
)
key=$( { echo "$version"; printf '%s\n' "${flags[@]}"; sed -n '/^# ggml.pc.in begin/,/^# ggml.pc.in end/p' "$0"; } | sha256sum | cut -c1-12)
cache="${TWIN_GGML_CACHE:-${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/ggml}}"
cache="${cache:-${XDG_CACHE_HOME:-$HOME/.cache}/twin/ggml}"
case "$cache" in /*) ;; *) cache="$repo/$cache" ;; esac
prefix="$cache/ggml-$version-$key"

link() {
  ln -sfn "$prefix" "$repo/.ggml"
  echo "build-ggml: .ggml -> $prefix" >&2
  # A cargo build tried without the prefix left llama.cpp's and whisper.cpp's
  # CMake caches pointing at the stub (llama-cpp-sys-2 never reconfigures a
  # configured folder): drop those caches so the next build configures again.
  local target="${CARGO_TARGET_DIR:-$repo/target}"
  case "$target" in /*) ;; *) target="$repo/$target" ;; esac
  # llama-cpp-sys-2 and whisper-rs-sys each bundle a copy of the ggml they were
  # built against into their rlib, and neither rebuilds when ggml changes (new
  # flags, new CPU): drop their outputs once per ggml so cargo builds them
  # again against this one (a few minutes), instead of linking a stale copy.
  local stamp="$target/twin-ggml-prefix"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$prefix" ]; then
    if ls -d "$target"/*/.fingerprint/llama-cpp-sys-2-* "$target"/*/.fingerprint/whisper-rs-sys-* >/dev/null 2>&1; then
      rm -rf "$target"/*/.fingerprint/{llama-cpp-sys-2,whisper-rs-sys}-* "$target"/*/build/{llama-cpp-sys-2,whisper-rs-sys}-*
      echo "build-ggml: ggml changed; llama.cpp and whisper.cpp rebuild against it on the next cargo build" >&2
    fi
    mkdir -p "$target"
    echo "$prefix" >"$stamp"
  fi
  grep -l "ggml-missing" "$target"/*/build/{llama-cpp-sys-2,whisper-rs-sys}-*/out/build/CMakeCache.txt 2>/dev/null | while read -r cache; do
    rm -f "$cache"
    echo "build-ggml: reset $(dirname "$cache") (it was configured without ggml)" >&2
  done || true
}
if [ -f "$prefix/.complete" ]; then
  link
  exit 0
fi

mkdir -p "$cache"
# One build at a time per prefix (two clones set up at once).
exec 9>"$prefix.lock"
flock 9
if [ -f "$prefix/.complete" ]; then link; exit 0; fi

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -a "$src/llama.cpp/ggml" "$work/src"
# The packaged sources lack ggml.pc.in, which a standalone ggml build installs.
cat >"$work/src/ggml.pc.in" <<'EOF'
# ggml.pc.in begin
prefix=@CMAKE_INSTALL_PREFIX@
exec_prefix=${prefix}
includedir=${prefix}/include
libdir=${prefix}/lib

Name: ggml
Description: The GGML Tensor Library for Machine Learning
Version: @GGML_VERSION@
Cflags: -I${includedir}
Libs: -L${libdir} -lggml -lggml-base -lggml-cpu
# ggml.pc.in end
EOF
sed -i '/^# ggml.pc.in/d' "$work/src/ggml.pc.in"

jobs=$(nproc 2>/dev/null || echo 2)
echo "build-ggml: building ggml from llama-cpp-sys-2 $version into $prefix ($jobs jobs; a few minutes)" >&2
rm -rf "$prefix.tmp"
cmake -S "$work/src" -B "$work/build" "${flags[@]}" -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib >"$work/configure.log" 2>&1 \
  || { cat "$work/configure.log" >&2; echo "build-ggml: cmake configure failed" >&2; exit 1; }
cmake --build "$work/build" -j "$jobs" >"$work/build.log" 2>&1 \
  || { tail -n 40 "$work/build.log" >&2; echo "build-ggml: build failed" >&2; exit 1; }
cmake --install "$work/build" --prefix "$prefix.tmp" >/dev/null
# The installed config names the install prefix; it was configured as $prefix.
rm -rf "$prefix"
mv "$prefix.tmp" "$prefix"
touch "$prefix/.complete"
link

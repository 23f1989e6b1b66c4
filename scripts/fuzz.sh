#!/usr/bin/env bash
# Fuzzes every parser with cargo-fuzz (libFuzzer + AddressSanitizer) for SECONDS_PER_TARGET
# seconds each (default 5): remote-write bodies, events.jsonl, the dataset text files and
# metrics.parquet, config TOML, model.json and sample segments (targets in fuzz/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Needs a nightly toolchain already installed (none is downloaded: without one this prints
# a SKIPPED line and exits 0). Installs cargo-fuzz once (`cargo install --locked`).
# Each run starts from the seeds in fuzz/corpus/<target>/ plus what earlier runs found
# (kept in $HARBINGER_FUZZ_DIR, default ~/.cache/harbinger-fuzz, with the build). Exits
# non-zero when a target finds a crash; the input is saved under fuzz/artifacts/<target>/
# and `cargo +nightly fuzz run <target> <that file>` reproduces it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-5}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]  (a whole number of seconds, default 5)" >&2
  exit 2
fi
targets=(remote_write events_jsonl dataset_csv dataset_parquet config_toml model_json store_segment)

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "SKIPPED: fuzzing needs a nightly toolchain and none is installed (rustup toolchain list); not downloading one"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

work="${HARBINGER_FUZZ_DIR:-$HOME/.cache/harbinger-fuzz}"
# Its own target directory: sanitizer flags would otherwise rebuild the main one.
target_dir="$work/target"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
unset CARGO_TARGET_DIR
# The dataset targets write their files under TMPDIR: a fresh one per run.
export TMPDIR="$work/tmp"
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR"

start=$(date +%s)
echo "== building ${#targets[@]} fuzz targets (cargo +nightly fuzz build, target dir $target_dir)"
cargo +nightly fuzz build --target-dir "$target_dir"
echo "built in $(($(date +%s) - start)) s"

failed=()
for t in "${targets[@]}"; do
  # New inputs go to the first corpus directory: the work copy, not the seeds in the tree.
  mkdir -p "$work/corpus/$t"
  echo "== $t: ${seconds} s"
  if ! cargo +nightly fuzz run --target-dir "$target_dir" "$t" "$work/corpus/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 2>"$work/$t.log"; then
    tail -n 40 "$work/$t.log"
    failed+=("$t")
    continue
  fi
  grep -E '^stat::number_of_executed_units|^Done ' "$work/$t.log" || true
done

echo "fuzzing took $(($(date +%s) - start)) s in all"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED: crashes in ${failed[*]} (inputs under fuzz/artifacts/)"
  exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"

# Sourced by the bench scripts after `cd` to the repository root: builds the release
# binary and sets bin (the binary), work (BENCH_WORK or a fresh temporary directory),
# date (UTC day) and machine (cores and CPU model) for the section headers.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
cargo build --release --workspace
bin="$CARGO_TARGET_DIR/release/harbinger"
work="${BENCH_WORK:-$(mktemp -d)}"
mkdir -p "$work"
date="$(date -u +%Y-%m-%d)"
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

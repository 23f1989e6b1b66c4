#!/usr/bin/env bash
# Supply-chain gate: `cargo deny check licenses bans sources` against deny.toml.
#
# Installs cargo-deny (idempotently: only when missing) with `cargo install --locked` into
# $HARBINGER_TOOLS (default ~/.cache/harbinger-tools), printing how long that took.
#
# Advisories need the RustSec advisory database, which cargo-deny fetches from GitHub; a
# machine that reaches only the package registries cannot get it, so the advisories check
# runs only with HARBINGER_DENY_ADVISORIES=1 (where the database can be fetched).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
tools="${HARBINGER_TOOLS:-$HOME/.cache/harbinger-tools}"
export PATH="$tools/bin:$PATH"

if ! cargo deny --version >/dev/null 2>&1; then
  echo "installing cargo-deny into $tools (cargo install --locked)"
  start=$(date +%s)
  # Its own target directory: the build's artifacts are not the workspace's.
  CARGO_TARGET_DIR="$tools/build" cargo install --locked --quiet --root "$tools" cargo-deny
  rm -rf "$tools/build"
  echo "cargo-deny installed in $(($(date +%s) - start)) s"
fi
cargo deny --version

checks=(licenses bans sources)
if [ "${HARBINGER_DENY_ADVISORIES:-0}" = "1" ]; then
  checks+=(advisories)
else
  echo "advisories skipped: the RustSec database is fetched from GitHub, unreachable here (HARBINGER_DENY_ADVISORIES=1 runs them)"
fi
start=$(date +%s%N)
cargo deny --all-features --locked check --hide-inclusion-graph "${checks[@]}"
echo "cargo deny check ${checks[*]}: $((($(date +%s%N) - start) / 1000000)) ms"

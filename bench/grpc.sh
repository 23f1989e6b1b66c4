#!/usr/bin/env bash
# gRPC benchmark: `harbinger bench grpc` against an in-process server with the default model
# (models/default) over the sample fleet (datasets/fleet-sample), and the same load against
# a Python grpcio + scikit-learn peer (bench/python_peer.py), in the same run, on both cores.
# The Python side is installed in a venv under $HOME/.cache (grpcio, grpcio-tools, numpy,
# scikit-learn). Writes the "grpc-2cores" section of BENCHMARKS.md.
# Extra arguments go to `harbinger bench grpc` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo

venv="$HOME/.cache/harbinger-bench-venv"
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends python3-venv
    python3 -m venv "$venv"
  fi
fi
if ! "$venv/bin/python" -c 'import grpc, grpc_tools, numpy, sklearn' 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check grpcio grpcio-tools numpy scikit-learn
fi

cargo build --release --workspace
bin="$CARGO_TARGET_DIR/release/harbinger"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The sample fleet is recorded history (2023): keep it whatever its age.
export HARBINGER_STORE_RETENTION=forever
"$bin" --log-level warn --data-dir "$work/store" ingest --data datasets/fleet-sample >/dev/null

out="$work/section.md"
{
  echo "### gRPC scoring, both cores"
  echo
  echo "Script: \`bench/grpc.sh $*\`  "
  "$bin" --log-level warn --data-dir "$work/store" bench grpc \
    --peer-cmd "$venv/bin/python bench/python_peer.py" --peer-name "Python grpcio + scikit-learn" "$@"
} | tee "$out"
python3 scripts/update_benchmarks.py grpc-2cores "$out"

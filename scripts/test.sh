#!/usr/bin/env bash
# Runs every harbinger test. Installs (idempotently) what the tests need first:
#   - Debian: prometheus (a real Prometheus remote-writes into harbinger in a test),
#     prometheus-alertmanager (a real Alertmanager sends webhooks in a test),
#     haproxy (the haproxy actuator switches a real HAProxy through its runtime API),
#     redis-server (the redis actuator starts real replicas and promotes them),
#     iproute2 (`ip netns`: the demo tests make hosts network namespaces when run as root),
#     systemd (`systemd-analyze verify` and `security` check the unit in deploy/systemd/)
#     chromium (headless: the report test renders report.html in a real browser)
#   - Python: grpcio and grpcio-tools (the Python gRPC client test generates its stubs from
#     proto/); nbclient, nbformat, ipykernel, polars, matplotlib (notebooks/ are executed
#     headless by a test); python3-pip from Debian when python3 has no pip
# Build output goes to $CARGO_TARGET_DIR (default ~/.cache/harbinger-target), outside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
apt_needed=()
command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || apt_needed+=(prometheus)
[ -x /usr/bin/prometheus-alertmanager ] || command -v alertmanager >/dev/null 2>&1 || apt_needed+=(prometheus-alertmanager)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || apt_needed+=(haproxy)
command -v redis-server >/dev/null 2>&1 || apt_needed+=(redis-server)
command -v ip >/dev/null 2>&1 || apt_needed+=(iproute2)
[ -x /usr/bin/systemd-analyze ] || apt_needed+=(systemd)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || apt_needed+=(chromium)
command -v python3 >/dev/null 2>&1 || apt_needed+=(python3)
if ! python3 -c 'import grpc, grpc_tools, nbclient, nbformat, ipykernel, polars, matplotlib' >/dev/null 2>&1 && ! python3 -m pip --version >/dev/null 2>&1; then
  apt_needed+=(python3-pip)
fi
if [ "${#apt_needed[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${apt_needed[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${apt_needed[@]}"
fi

# Python packages: grpcio and grpcio-tools (the gRPC client test), and what the notebooks
# under notebooks/ need to run headless (nbclient, ipykernel, polars, matplotlib).
py_needed=()
python3 -c 'import grpc, grpc_tools' >/dev/null 2>&1 || py_needed+=(grpcio grpcio-tools)
python3 -c 'import nbclient, nbformat, ipykernel' >/dev/null 2>&1 || py_needed+=(nbclient nbformat ipykernel)
python3 -c 'import polars, matplotlib' >/dev/null 2>&1 || py_needed+=(polars matplotlib)
if [ "${#py_needed[@]}" -gt 0 ]; then
  echo "installing Python packages: ${py_needed[*]}"
  # Debian's system Python refuses plain `pip install` (PEP 668); --break-system-packages
  # is only passed where pip knows it.
  pip_flags=(--quiet --disable-pip-version-check)
  if python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
    pip_flags+=(--break-system-packages)
  fi
  python3 -m pip install "${pip_flags[@]}" "${py_needed[@]}"
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi

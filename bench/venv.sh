# Sourced by the bench scripts: makes (once) a Python venv under $HOME/.cache and installs
# the packages named in $BENCH_PY_PACKAGES if `import $BENCH_PY_IMPORTS` fails. Sets $venv.
venv="$HOME/.cache/harbinger-bench-venv"
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends python3-venv
    python3 -m venv "$venv"
  fi
fi
if ! "$venv/bin/python" -c "import $BENCH_PY_IMPORTS" 2>/dev/null; then
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $BENCH_PY_PACKAGES
fi

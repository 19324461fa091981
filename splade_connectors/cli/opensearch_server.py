"""`splade-connectors opensearch-server`: fetch and run a native OpenSearch (no Docker needed).

Its verbs (`fetch | run | start | stop | cluster`, each with `--help`) are those of
`python -m splade_connectors.live.opensearch_cluster` (the server's four, plus a local cluster);
`cli.main` reports their `ServerError`s as one `error:` line with exit code 2, like any command's errors.
"""

from __future__ import annotations

from splade_connectors.live.opensearch_cluster import COMMANDS  # the server verbs and `cluster`

register = COMMANDS.register

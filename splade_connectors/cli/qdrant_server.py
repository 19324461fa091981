"""`splade-connectors qdrant-server`: run the native Qdrant server binary (no Docker needed).

Its verbs (`fetch | run | start | stop | cluster`, each with `--help`) are those of
`python -m splade_connectors.live.qdrant_cluster` (the server's four, plus a local cluster);
`cli.main` reports their `ServerError`s as one `error:` line with exit code 2, like any command's errors.
"""

from __future__ import annotations

from splade_connectors.live.qdrant_cluster import COMMANDS  # the server verbs and `cluster`

register = COMMANDS.register

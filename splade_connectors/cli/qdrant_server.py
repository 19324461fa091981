"""`splade-connectors qdrant-server`: run the native Qdrant server binary (no Docker needed).

Its verbs (`fetch | run | start | stop`, each with `--help`) are those of `python -m splade_connectors.live.qdrant_server`;
`cli.main` reports their `ServerError`s as one `error:` line with exit code 2, like any command's errors.
"""

from __future__ import annotations

from splade_connectors.live.qdrant_server import COMMANDS

register = COMMANDS.register

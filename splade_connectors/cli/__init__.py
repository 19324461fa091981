"""The `splade-connectors` command line: one module per command, registered here."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from splade_connectors.errors import SpladeError, redact

# command name -> module under splade_connectors.cli with `register(subparsers)`; each module adds
# its parser and sets `func` (args -> exit code). Modules are imported lazily only for their command.
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "ingest": "ingest",
    "search": "search",
    "eval": "evaluate",
    "tune": "tune",
    "train": "train",
    "opensearch-server": "opensearch_server",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="splade-connectors", description="SPLADE sparse retrieval into Qdrant and OpenSearch.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=f"(run `splade-connectors {name} -h`)")
            continue
        try:
            module = importlib.import_module(f"splade_connectors.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("splade_connectors.cli"):
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "urllib3", "transformers", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # opensearch-py logs every failed request with a traceback; our errors already say what failed
    logging.getLogger("opensearch").setLevel(logging.DEBUG if args.verbose else logging.ERROR)
    try:
        return int(args.func(args) or 0)
    except SpladeError as exc:  # bad options, input or store: one line for the user, not a traceback
        if args.verbose:
            logging.getLogger(__name__).debug("details", exc_info=True)
        print(f"error: {redact(' '.join(str(exc).split()), _secrets(args))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _secrets(args: argparse.Namespace) -> list[str]:
    """Secret values the options or environment hold, masked in any message as a last line of defence."""
    import os

    values = [getattr(args, "opensearch_password", None), os.environ.get("OPENSEARCH_PASSWORD")]
    api_key_env = getattr(args, "qdrant_api_key_env", None)
    values.append(os.environ.get(api_key_env) if api_key_env else os.environ.get("QDRANT_API_KEY"))
    return [v for v in values if v]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

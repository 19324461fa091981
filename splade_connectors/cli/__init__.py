"""The `splade-connectors` command line: one module per command, registered here.

Commands share options and output through their own modules, never through each other: `values`
(option value types), `model` (model and encoding options), `datasets` (eval/tune datasets),
`stores` (store options), `output` (JSON, tables, reports, progress bars).

Errors are reported in one place, `main`, one way: a single `error: ...` line on stderr and exit
code 2 for anything the user can act on (a bad option value, unusable input, a store that is
unreachable, refuses the credentials or lacks the collection: every `SpladeError`, and file-system
errors), no traceback unless `-v`; Ctrl-C is `error: interrupted` with exit code 130, and SIGTERM is
handled the same way (`error: terminated`, exit code 143): the command unwinds, so an ingestion restores
its store's settings and keeps its checkpoint. Option parsing
errors have the same one-line form. Secrets (passwords, API keys, URL credentials) are masked in
that line, in every log record the command writes (the `-v` tracebacks included) and in the traceback
of an unexpected error (a bug: exit code 1). Store URLs are parsed strictly before anything uses them
(`splade_connectors.urls`): a malformed one is one `error:` line, credentials masked.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import NoReturn

from splade_connectors.cli import demo, evaluate, ingest, migrate, opensearch_server, qdrant_server, search, train, tune
from splade_connectors.errors import SpladeError, redact
from splade_connectors.urls import url_secrets

# command name -> its module, whose `register(subparsers)` adds the command's parser and sets `func`
# (args -> exit code). Imported here, all of them: a module that fails to import fails the CLI. Command
# modules import heavy libraries (torch, store clients) only when they run, so this stays cheap.
COMMANDS: dict[str, ModuleType] = {
    "demo": demo,
    "ingest": ingest,
    "search": search,
    "eval": evaluate,
    "tune": tune,
    "migrate": migrate,
    "train": train,
    "opensearch-server": opensearch_server,
    "qdrant-server": qdrant_server,
}
EXIT_ERROR = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that `finally` blocks and cleanup run."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class CliParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one `error: ...` line (exit 2), like every other CLI error."""

    def error(self, message: str) -> NoReturn:
        report_error(f"{message} (see {self.prog} --help)", _secrets_from_environment())
        self.exit(EXIT_ERROR)


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="splade-connectors", description="SPLADE sparse retrieval into Qdrant and OpenSearch.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, library warnings and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        before = set(sub.choices)
        module.register(sub)
        if set(sub.choices) - before != {name}:
            raise RuntimeError(f"{module.__name__}.register() must add the {name!r} command")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a parsing error already reported (2)
        return int(exit_.code or 0)
    except KeyboardInterrupt:
        report_error("interrupted")
        return EXIT_INTERRUPTED
    secrets = secrets_of(args)
    configure_logging(args.verbose, secrets)
    installed = _handle_sigterm()
    try:
        return int(args.func(args) or 0)
    except SpladeError as exc:  # bad options, input or store: one line for the user, not a traceback
        logging.getLogger(__name__).debug("details", exc_info=True)
        report_error(str(exc), secrets)
        return EXIT_ERROR
    except OSError as exc:  # a file that cannot be read or written
        logging.getLogger(__name__).debug("details", exc_info=True)
        report_error(_os_error_message(exc), secrets)
        return EXIT_ERROR
    except Terminated:
        report_error("terminated", secrets)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        report_error("interrupted", secrets)
        return EXIT_INTERRUPTED
    except Exception:  # noqa: BLE001 - a bug, not a user error: its traceback as Python prints it, secrets masked
        print(redact(traceback.format_exc(), secrets), file=sys.stderr, end="", flush=True)
        return EXIT_BUG
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _handle_sigterm() -> bool:
    """Make SIGTERM raise `Terminated` (main thread, default handler only); whether it was installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:  # a host program installed its own
        return False
    signal.signal(signal.SIGTERM, _raise_terminated)
    return True


def report_error(message: str, secrets: Iterable[str] = ()) -> None:
    """Print `error: <message>` as one line on stderr, secrets masked."""
    print(f"error: {redact(' '.join(message.split()), secrets)}", file=sys.stderr, flush=True)


def _os_error_message(exc: OSError) -> str:
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc) or type(exc).__name__


# ---- secrets ------------------------------------------------------------------------------------------------
def _secrets_from_environment() -> list[str]:
    values = [os.environ.get("OPENSEARCH_PASSWORD"), os.environ.get("QDRANT_API_KEY")]
    values += url_secrets(os.environ.get("OPENSEARCH_URL")) + url_secrets(os.environ.get("QDRANT_URL"))
    return [v for v in values if v]


def secrets_of(args: argparse.Namespace) -> list[str]:
    """Secret values the options or environment hold, masked in every message and log line."""
    values: list[str | None] = list(_secrets_from_environment())
    values.append(getattr(args, "opensearch_password", None))
    api_key_env = getattr(args, "qdrant_api_key_env", None)
    if api_key_env:
        values.append(os.environ.get(api_key_env))
    for option in ("opensearch_url", "qdrant_url"):
        values += url_secrets(getattr(args, option, None))
    return sorted({v for v in values if v}, key=len, reverse=True)


class RedactingFormatter(logging.Formatter):
    """Formats log records (message, arguments and tracebacks alike), then masks secrets and URL credentials."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self.secrets = list(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


# ---- logging --------------------------------------------------------------------------------------------------
def configure_logging(verbose: bool, secrets: Iterable[str]) -> None:
    """Warnings and errors by default, everything with `-v`; library chatter (progress bars, warnings) only with `-v`.

    Installs a redacting stderr handler unless the host program (e.g. pytest) already configured logging.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(RedactingFormatter(LOG_FORMAT, secrets))
        root.addHandler(handler)
    else:
        for existing in root.handlers:
            if isinstance(existing.formatter, RedactingFormatter):
                existing.formatter.secrets = list(secrets)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for noisy in ("httpx", "httpcore", "urllib3", "transformers", "filelock", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    # opensearch-py logs every failed request with a traceback; our errors already say what failed
    logging.getLogger("opensearch").setLevel(logging.DEBUG if verbose else logging.ERROR)
    # library warnings (qdrant-client's version check on an unreachable server, torch betas) are noise
    # in front of our one-line errors: they go through logging, shown with -v only
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.WARNING if verbose else logging.CRITICAL)
    if not verbose:
        _quiet_progress_bars()


def _quiet_progress_bars() -> None:
    """No model-loading progress bars from transformers / huggingface_hub (the commands have their own)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

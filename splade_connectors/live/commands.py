"""The verbs every local server has: ``fetch | run | start | stop``, each with its own ``--help``.

One `ServerCommands` per server kind serves both entry points: ``python -m splade_connectors.live.<module>``
(`main`, `script`) and ``splade-connectors <kind>-server`` (`register`, which the CLI shims are).
Failures are `ServerError` (a `SpladeError`): the ``splade-connectors`` command prints them as one
``error:`` line with exit code 2, and so does `script`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splade_connectors.errors import SpladeError
from splade_connectors.live.managed import ManagedServer, read_pidfile, wait_for_signal, write_pidfile

EXIT_ERROR = 2
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

VERBS = ("fetch", "run", "start", "stop")


@dataclass(frozen=True)
class ExtraVerb:
    """A verb one kind of server has beyond the four (``qdrant-server cluster``): runs like ``run`` until Ctrl-C.

    ``open`` returns what to run: a context manager (start on enter, stop on exit) with a ``describe()``.
    """

    help: str
    add_options: Callable[[argparse.ArgumentParser], None]
    open: Callable[[argparse.Namespace], Any]


@dataclass(frozen=True)
class ServerCommands:
    """The four verbs for one kind of server; the callables say what is specific to it."""

    server_class: type[ManagedServer]  # its module's docstring is the description, its first line the help
    fetch_help: str  # what ``fetch`` does for this kind
    add_options: Callable[[argparse.ArgumentParser, str], None]  # (verb's parser, verb): its own options
    fetch: Callable[[argparse.Namespace], Path]  # download or unpack; the path it prints
    server: Callable[[argparse.Namespace, bool], ManagedServer]  # (args, tie_to_parent): a server to start
    extra_verbs: dict[str, ExtraVerb] = field(default_factory=dict)  # verbs of this kind only, after the four

    @property
    def module(self) -> str:
        """The module of the server class, as ``python -m`` names it."""
        module = sys.modules[self.server_class.__module__]
        return module.__spec__.name if module.__spec__ is not None else module.__name__

    @property
    def description(self) -> str:
        """The server module's docstring (what it runs, where from, its environment)."""
        return sys.modules[self.server_class.__module__].__doc__ or ""

    @property
    def summary(self) -> str:
        """The docstring's first line, as a line of ``splade-connectors --help``."""
        first = self.description.split("\n", 1)[0].rstrip(".")
        return first[:1].lower() + first[1:]

    @property
    def command(self) -> str:
        """``splade-connectors <command>``: ``opensearch-server``, ``qdrant-server``."""
        return f"{self.server_class.kind.lower()}-server"

    def register(self, subparsers: Any) -> None:
        """Add ``splade-connectors <command>`` with the four verbs; `cli.main` runs it and reports its errors."""
        parser = subparsers.add_parser(
            self.command, help=self.summary, description=self.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.add_verbs(parser)
        parser.set_defaults(func=self.run)

    def add_verbs(self, parser: argparse.ArgumentParser) -> None:
        """Add the four verbs (with their options and help) as sub-commands of ``parser``."""
        kind = self.server_class.kind
        helps = {
            "fetch": self.fetch_help,
            "run": f"start {kind}, print where it is, block until Ctrl-C or SIGTERM, stop it",
            "start": f"start {kind} in the background (it outlives this command) and write --pidfile",
            "stop": f"stop the {kind} server of --pidfile and delete its run folder",
        }
        verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
        for verb in VERBS:
            command = verbs.add_parser(verb, help=helps[verb], description=helps[verb])
            self.add_options(command, verb)
            if verb in ("start", "stop"):
                command.add_argument("--pidfile", type=Path, required=True, help="JSON state of the detached server")
            command.set_defaults(server_verb=verb)
        for verb, extra in self.extra_verbs.items():
            command = verbs.add_parser(verb, help=extra.help, description=extra.help)
            extra.add_options(command)
            command.set_defaults(server_verb=verb)

    def parser(self) -> argparse.ArgumentParser:
        """The standalone parser of ``python -m``."""
        parser = argparse.ArgumentParser(
            prog=f"python -m {self.module}", description=self.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.add_verbs(parser)
        return parser

    def run(self, args: argparse.Namespace) -> int:
        """Run the verb ``args`` were parsed for; failures raise `ServerError`."""
        verb: str = args.server_verb
        if verb in self.extra_verbs:
            with self.extra_verbs[verb].open(args) as running:
                print(f"{running.describe()}\nCtrl-C stops", flush=True)
                wait_for_signal()
            print("stopped", flush=True)
            return 0
        if verb == "fetch":
            print(self.fetch(args))
        elif verb == "run":
            with self.server(args, True) as server:
                print(f"{server.describe()}; Ctrl-C stops", flush=True)
                wait_for_signal()
            print("stopped", flush=True)
        elif verb == "start":
            server = self.server(args, False)
            server.start()
            line = server.describe()
            write_pidfile(args.pidfile, server.detach())
            print(f"{line}; pidfile {args.pidfile}")
        else:
            self.server_class.stop_detached(read_pidfile(args.pidfile))
            args.pidfile.unlink()
            print("stopped")
        return 0

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Parse ``argv``, log at INFO, run the verb (failures raise `ServerError`)."""
        args = self.parser().parse_args(argv)
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
        return self.run(args)

    def script(self, argv: Sequence[str] | None = None) -> int:
        """`main` for ``python -m``: a failure is one ``error:`` line on stderr and exit code 2."""
        try:
            return self.main(argv)
        except SpladeError as exc:
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
            return EXIT_ERROR

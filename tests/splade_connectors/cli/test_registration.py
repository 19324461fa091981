"""The CLI's structure: every command module registered, shared option groups, no silently missing command."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import splade_connectors.cli as cli
from splade_connectors.cli import COMMANDS, build_parser

from .conftest import CliRun, cli_env

Cli = Callable[..., CliRun]


def _cli_modules() -> dict[str, ModuleType]:
    return {
        info.name: importlib.import_module(f"{cli.__name__}.{info.name}")
        for info in pkgutil.iter_modules(cli.__path__)
        if info.name != "__main__"
    }


def test_every_command_module_is_registered() -> None:
    commands = {name: module for name, module in _cli_modules().items() if hasattr(module, "register")}
    assert {"demo", "ingest", "search", "evaluate", "tune", "train", "opensearch_server", "qdrant_server"} <= set(commands)
    assert sorted(m.__name__ for m in COMMANDS.values()) == sorted(m.__name__ for m in commands.values())
    subparsers = build_parser()._subparsers._group_actions[0]
    assert sorted(subparsers.choices) == sorted(COMMANDS)


def _imported_names(module: ModuleType) -> set[str]:
    """Every module name a module imports anywhere in its source (`from a import b` gives a and a.b)."""
    tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_command_imports_another_command() -> None:
    commands = {m.__name__ for m in COMMANDS.values()}
    for module in COMMANDS.values():
        siblings = (_imported_names(module) & commands) - {module.__name__}
        assert not siblings, f"{module.__name__} imports {sorted(siblings)}: shared code belongs in a shared module"
    shared = [m for m in _cli_modules().values() if not hasattr(m, "register")]
    assert shared
    for module in shared:
        assert not _imported_names(module) & commands, f"{module.__name__} (shared) imports a command"


def test_a_command_module_that_cannot_be_imported_breaks_the_cli() -> None:
    code = "import sys; sys.modules['splade_connectors.cli.train'] = None; import splade_connectors.cli"
    run = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "splade_connectors.cli.train" in run.stderr


def test_registering_every_command_imports_neither_torch_nor_a_store_client() -> None:
    heavy = ("torch", "transformers", "qdrant_client", "opensearchpy")
    code = (
        "import sys; from splade_connectors.cli import build_parser; build_parser(); "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_eval_and_tune_check_max_docs_the_same_way(cli: Cli, value: str) -> None:
    lines = {command: cli(command, "--beir-dir", "x", "--max-docs", value).error_line() for command in ("eval", "tune")}
    assert lines["eval"].replace("eval", "tune") == lines["tune"]
    assert "argument --max-docs:" in lines["eval"]


def test_eval_and_tune_share_the_dataset_and_store_options() -> None:
    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0]

    def options(command: str, group: str) -> set[str]:
        (found,) = [g for g in subparsers.choices[command]._action_groups if g.title == group]
        return {o for action in found._group_actions for o in action.option_strings}

    assert options("eval", "datasets") == options("tune", "dataset (one)")
    for group in ("qdrant", "opensearch", "model"):
        assert options("eval", group) == options("tune", group) and options("eval", group)

"""Fetch and run a real single-node OpenSearch assembled from Maven Central (no Docker; for tests and local use).

`NativeOpenSearch` runs it. The distribution comes from `opensearch_distribution` (cached under
``${SPLADE_CONNECTORS_CACHE:-~/.cache/splade-connectors}/opensearch/<version>-<recipe hash>/``), the JDK
from `jdk` (``OPENSEARCH_JAVA_HOME``, else a compatible JDK under ``/usr/lib/jvm``, else PATH), and when
the caller is root the JVM runs as an unprivileged user (`opensearch_user`). Each run gets a fresh
temporary folder (``config/``, ``data/``, ``logs/``, ``tmp/``) that `stop()` deletes; the process half
(ports, readiness, stop, detach) is `managed.ManagedServer`.

Python API::

    from splade_connectors.live.opensearch_native import NativeOpenSearch
    with NativeOpenSearch(version="2.19.3") as server:
        print(server.url, server.version, server.startup_seconds)

CLI (also ``splade-connectors opensearch-server ...``; each verb has ``--help``)::

    python -m splade_connectors.live.opensearch_native fetch [--version V]
    python -m splade_connectors.live.opensearch_native run [--version V] [--heap 512m]
    python -m splade_connectors.live.opensearch_native start --pidfile os.json
    python -m splade_connectors.live.opensearch_native stop --pidfile os.json

Environment: ``SPLADE_CONNECTORS_CACHE`` (cache root), ``SPLADE_CONNECTORS_MAVEN_REPO`` (Maven repository,
default Maven Central; ``mvn dependency:copy`` is the fallback), ``OPENSEARCH_JAVA_HOME``,
``SPLADE_CONNECTORS_OPENSEARCH_USER``, ``SPLADE_CONNECTORS_OPENSEARCH_VERSION`` (the CLI's default version),
``SPLADE_CONNECTORS_OPENSEARCH_HEAP`` (JVM heap, default 512m: enough for the tests;
``heap_for_documents(n)`` sizes it for larger indices).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from splade_connectors.errors import ConfigError
from splade_connectors.live.commands import ServerCommands
from splade_connectors.live.jdk import find_java_home, java_major
from splade_connectors.live.managed import Launch, ManagedServer, free_port
from splade_connectors.live.opensearch_distribution import ensure_distribution
from splade_connectors.live.opensearch_user import chown_tree, launch_prefix, link_tree, run_as_user

__all__ = [
    "DEFAULT_HEAP",
    "DEFAULT_VERSION",
    "HEAP_ENV",
    "NativeOpenSearch",
    "check_heap",
    "default_heap",
    "ensure_distribution",
    "heap_for_documents",
    "main",
    "node_settings",
    "run_as_user",
]

log = logging.getLogger(__name__)

DEFAULT_VERSION = "2.19.3"  # also pinned in docker-compose.test.yml
DEFAULT_HEAP = "512m"  # fits the test suite's indices (a few thousand documents each)
HEAP_ENV = "SPLADE_CONNECTORS_OPENSEARCH_HEAP"
VERSION_ENV = "SPLADE_CONNECTORS_OPENSEARCH_VERSION"
_HEAP_RE = re.compile(r"^[1-9][0-9]*[kKmMgG]$")
_FIXED_SETTINGS = frozenset({"http.port", "transport.port", "network.host"})


# ---------------------------------------------------------------- heap


def default_heap() -> str:
    """The heap a server gets unless told otherwise: ``$SPLADE_CONNECTORS_OPENSEARCH_HEAP`` or 512m."""
    return os.environ.get(HEAP_ENV) or DEFAULT_HEAP


def heap_for_documents(documents: int) -> str:
    """A heap that fits a single-node index of this many SPLADE documents (~300 terms + text each).

    512m holds the test suite's indices; for a million documents (`bench/opensearch.py scale`), 2g
    gives the indexing buffer (10% of the heap) room for larger segments, hence fewer merges.
    Lucene keeps postings and stored fields off-heap (page cache): the rest of the RAM serves queries.
    """
    if documents <= 50_000:
        return "512m"
    if documents <= 250_000:
        return "1g"
    return "2g"


def check_heap(heap: str) -> str:
    """``heap`` if it is a JVM size such as 512m or 2g, else `ConfigError`."""
    if not _HEAP_RE.match(heap):
        raise ConfigError(f"heap must be a JVM size such as 512m or 2g, got {heap!r}")
    return heap


# ---------------------------------------------------------------- per-run config


def node_settings(run_dir: Path, host: str, http_port: int, transport_port: int) -> dict[str, object]:
    """``opensearch.yml`` for a throwaway single-node test server."""
    return {
        "cluster.name": "splade-connectors-native",
        "node.name": "native-1",
        "path.data": str(run_dir / "data"),
        "path.logs": str(run_dir / "logs"),
        "network.host": host,
        "http.port": http_port,
        "transport.port": transport_port,
        "discovery.type": "single-node",  # also skips the production bootstrap checks
        "bootstrap.memory_lock": False,
        "cluster.routing.allocation.disk.threshold_enabled": False,  # no read-only indices on full CI disks
    }


def _write_config(home: Path, run_dir: Path, settings: Mapping[str, object], heap: str) -> Path:
    """Per-run config dir: the distribution's files plus our yml (JSON scalars are YAML) and heap options."""
    conf = run_dir / "config"
    shutil.copytree(home / "config", conf)
    _absolutize_jvm_paths(conf / "jvm.options", run_dir)
    yml = "".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items())
    (conf / "opensearch.yml").write_text(yml, encoding="utf-8")
    options = conf / "jvm.options.d"
    options.mkdir(exist_ok=True)
    jvm = [f"-Xms{heap}", f"-Xmx{heap}", "-XX:-HeapDumpOnOutOfMemoryError", "-XX:-UsePerfData"]
    (options / "splade-connectors.options").write_text("\n".join(jvm) + "\n", encoding="utf-8")
    return conf


def _absolutize_jvm_paths(jvm_options: Path, run_dir: Path) -> None:
    """Point the relative ``logs/``, ``data`` paths of jvm.options into the run dir.

    ``bin/opensearch`` runs the JVM with cwd = OPENSEARCH_HOME, so the stock
    relative paths (gc log, error file, heap dumps) would land in the cache.
    """
    text = jvm_options.read_text(encoding="utf-8")
    text = re.sub(r"(file=|ErrorFile=)logs/", lambda m: f"{m.group(1)}{run_dir / 'logs'}/", text)
    text = re.sub(r"HeapDumpPath=data\b", f"HeapDumpPath={run_dir / 'data'}", text)
    jvm_options.write_text(text, encoding="utf-8")


def server_env(java_home: Path, home: Path, conf: Path, tmp: Path) -> dict[str, str]:
    """Environment for ``bin/opensearch``; inherited JVM options are dropped."""
    env = {k: v for k, v in os.environ.items() if k not in {"OPENSEARCH_JAVA_OPTS", "ES_JAVA_OPTS", "JAVA_TOOL_OPTIONS"}}
    env.update(
        JAVA_HOME=str(java_home),
        OPENSEARCH_JAVA_HOME=str(java_home),
        OPENSEARCH_HOME=str(home),
        OPENSEARCH_PATH_CONF=str(conf),
        OPENSEARCH_TMPDIR=str(tmp),  # also saves one JVM launch in bin/opensearch
    )
    return env


def _http_json(url: str, timeout: float) -> dict[str, object]:
    """GET ``url`` and decode a JSON object (ValueError if it is something else)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data = json.loads(resp.read().decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"unexpected JSON from {url}")
    return data


# ---------------------------------------------------------------- the server


class NativeOpenSearch(ManagedServer):
    """A throwaway single-node OpenSearch on 127.0.0.1 (context manager)."""

    kind = "OpenSearch"
    run_prefix = "splade-opensearch-"
    log_name = "logs/console.log"
    process_markers = (b"org.opensearch.bootstrap.OpenSearch",)
    clash_markers = ("bindtransportexception", "bindhttpexception")

    def __init__(
        self,
        version: str = DEFAULT_VERSION,
        *,
        heap: str | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 180.0,
        extra_settings: Mapping[str, object] | None = None,
        java_home: Path | None = None,
        tie_to_parent: bool = True,
    ) -> None:
        super().__init__(host=host, startup_timeout=startup_timeout, tie_to_parent=tie_to_parent)
        self.version = version
        self.heap = check_heap(heap or default_heap())
        self.extra_settings = dict(extra_settings or {})
        fixed = _FIXED_SETTINGS & set(self.extra_settings)
        if fixed:
            raise ConfigError(f"extra_settings cannot override {sorted(fixed)}: ports and host are chosen per start")
        self.java_home = java_home
        self.transport_port: int | None = None
        self._distribution: Path | None = None
        self._java: Path | None = None

    def _prepare(self) -> None:
        """The assembled distribution and the JDK (fetched and picked once)."""
        assert self.version is not None
        self._distribution = ensure_distribution(self.version)
        self._java = self.java_home or find_java_home(self.version)
        log.info("starting OpenSearch %s with JDK %s (major %s)", self.version, self._java, java_major(self._java))

    def _choose_ports(self, retry: bool) -> None:
        self.http_port, self.transport_port = free_port(self.host), free_port(self.host)

    def _launch(self, tie: bool) -> Launch:
        """A fresh run folder (config, data, logs, tmp) for these ports, owned by the JVM's user."""
        assert self._distribution is not None and self._java is not None
        assert self.http_port is not None and self.transport_port is not None
        if self.run_dir is not None:  # left by a port clash or a kill: a new start gets a new folder
            shutil.rmtree(self.run_dir, ignore_errors=True)
        user = run_as_user()
        self.run_dir = run_dir = Path(tempfile.mkdtemp(prefix=self.run_prefix))
        home = self._distribution
        if user is not None:  # the cache may be unreadable for that user: run from a linked copy
            run_dir.chmod(0o755)
            home = run_dir / "home"
            link_tree(self._distribution, home)
        conf = _write_config(home, run_dir, {**self._settings(run_dir), **self.extra_settings}, self.heap)
        for sub in ("data", "logs", "tmp"):
            (run_dir / sub).mkdir()
        if user is not None:
            for sub in ("config", "data", "logs", "tmp"):
                chown_tree(run_dir / sub, user)
        argv = [*launch_prefix(user, tie), str(home / "bin" / "opensearch")]
        return Launch(argv, server_env(self._java, home, conf, run_dir / "tmp"))

    def _settings(self, run_dir: Path) -> dict[str, object]:
        """``opensearch.yml`` of this run (before ``extra_settings``): a single node."""
        assert self.http_port is not None and self.transport_port is not None
        return node_settings(run_dir, self.host, self.http_port, self.transport_port)

    def _is_ready(self) -> bool:
        """Cluster health is green or yellow."""
        try:
            health = _http_json(f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=1s", timeout=5)
        except (OSError, ValueError):
            return False
        return health.get("status") in ("green", "yellow")

    def _on_ready(self) -> None:
        """Warn if the server reports another version than requested."""
        try:
            reported = _http_json(self.url, timeout=10).get("version")
        except (OSError, ValueError) as exc:
            log.warning("OpenSearch at %s did not report its version: %s", self.url, exc)
            return
        number = reported.get("number") if isinstance(reported, dict) else None
        if number != self.version:
            log.warning("requested OpenSearch %s but server reports %s", self.version, number)

    def _forget_run(self) -> None:
        """Ports are chosen per start."""
        self.http_port = self.transport_port = None

    def _details(self) -> list[str]:
        return [f"heap {self.heap}"]


# ---------------------------------------------------------------- CLI


def add_server_options(parser: argparse.ArgumentParser, verb: str) -> None:
    if verb in ("fetch", "run", "start"):
        parser.add_argument(
            "--version", default=os.environ.get(VERSION_ENV, DEFAULT_VERSION),
            help=f"OpenSearch version (default: ${VERSION_ENV}, else {DEFAULT_VERSION})",
        )
    if verb in ("run", "start"):
        parser.add_argument("--heap", default=None, help=f"JVM heap (default: ${HEAP_ENV}, else {DEFAULT_HEAP})")


COMMANDS = ServerCommands(
    server_class=NativeOpenSearch,
    fetch_help="download and assemble the distribution into the cache, print its path",
    add_options=add_server_options,
    fetch=lambda args: ensure_distribution(args.version),
    server=lambda args, tie: NativeOpenSearch(args.version, heap=args.heap, tie_to_parent=tie),
)
main = COMMANDS.main  # the CLI; failures raise `ServerError`

if __name__ == "__main__":
    sys.exit(COMMANDS.script())

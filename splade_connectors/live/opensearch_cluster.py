"""A local OpenSearch cluster: several native OpenSearch nodes on 127.0.0.1 forming one cluster (tests, local use).

Each node is an `OpenSearchClusterNode` (a `NativeOpenSearch` without ``discovery.type: single-node``): its own
HTTP and transport ports (picked once, kept across restarts), run folder, data and JVM. Every node lists all
transport ports in ``discovery.seed_hosts`` and all node names in ``cluster.initial_cluster_manager_nodes``
(used only by the first election); the cluster name is unique per cluster, so two clusters on one machine
never merge. The nodes start together (a lone node cannot elect a cluster manager); `OpenSearchCluster.start`
waits until the cluster lists every node and is green. ``kill(i)`` + ``restart(i)`` SIGKILLs a node and
brings it back on the same data and ports, where it rejoins (what the fault tests need). ``stop()`` stops
every node and deletes their run folders. Heaps default to 384m per node (3 nodes fit small machines).

Python API::

    from splade_connectors.live.opensearch_cluster import OpenSearchCluster
    with OpenSearchCluster(nodes=3) as cluster:
        print(cluster.urls, cluster.cluster_manager())   # any node's URL serves the whole cluster

CLI: ``splade-connectors opensearch-server cluster --nodes 3`` (blocks until Ctrl-C, then stops every node).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from splade_connectors.errors import ConfigError, ServerError
from splade_connectors.live.commands import ExtraVerb
from splade_connectors.live.managed import Launch, free_port
from splade_connectors.live.opensearch_native import (
    COMMANDS as SERVER_COMMANDS,
    DEFAULT_VERSION,
    NativeOpenSearch,
    add_server_options,
    check_heap,
    server_env,
)
from splade_connectors.live.opensearch_user import launch_prefix, run_as_user

log = logging.getLogger(__name__)

DEFAULT_NODE_HEAP = "384m"


class OpenSearchClusterNode(NativeOpenSearch):
    """One node of an `OpenSearchCluster`: fixed ports, cluster discovery, the run folder kept across a kill."""

    run_prefix = "splade-opensearch-node-"

    def __init__(
        self, version: str, *, name: str, cluster_name: str, http_port: int, transport_port: int,
        seed_hosts: list[str], initial_managers: list[str], **options: Any,
    ) -> None:
        super().__init__(version, **options)
        self.name, self.cluster_name = name, cluster_name
        self.fixed_ports = (http_port, transport_port)
        self.seed_hosts, self.initial_managers = seed_hosts, initial_managers

    def _choose_ports(self, retry: bool) -> None:
        """The ports the cluster gave (every node's seed hosts name them)."""
        self.http_port, self.transport_port = self.fixed_ports

    def _settings(self, run_dir: Path) -> dict[str, object]:
        settings = super()._settings(run_dir)
        del settings["discovery.type"]
        return {
            **settings,
            "cluster.name": self.cluster_name,
            "node.name": self.name,
            "discovery.seed_hosts": self.seed_hosts,
            "cluster.initial_cluster_manager_nodes": self.initial_managers,
        }

    def _launch(self, tie: bool) -> Launch:
        """A new run folder on the first start; after a kill, the same folder (config, data) again."""
        if self.run_dir is None or not (self.run_dir / "config").is_dir():
            return super()._launch(tie)
        assert self._distribution is not None and self._java is not None
        user = run_as_user()
        home = self.run_dir / "home" if user is not None else self._distribution
        argv = [*launch_prefix(user, tie), str(home / "bin" / "opensearch")]
        return Launch(argv, server_env(self._java, home, self.run_dir / "config", self.run_dir / "tmp"))

    def _is_ready(self) -> bool:
        """The node answers HTTP (the cluster's health is the cluster's to wait for)."""
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:
                return bool(response.status == 200)
        except (OSError, ValueError):
            return False

    def _details(self) -> list[str]:
        return [self.name, f"transport port {self.transport_port}", *super()._details()]


class OpenSearchCluster:
    """``nodes`` OpenSearch nodes on 127.0.0.1 forming one cluster (context manager: start on enter, stop on exit)."""

    def __init__(
        self,
        nodes: int = 3,
        version: str = DEFAULT_VERSION,
        *,
        heap: str = DEFAULT_NODE_HEAP,
        startup_timeout: float = 300.0,
        tie_to_parent: bool = True,
    ) -> None:
        if nodes < 1:
            raise ConfigError(f"a cluster needs at least one node, not {nodes}")
        self.size = nodes
        self.version = version
        self.heap = heap
        self.startup_timeout = startup_timeout
        self.tie_to_parent = tie_to_parent
        self.nodes: list[OpenSearchClusterNode] = []

    @property
    def url(self) -> str:
        """The first node's HTTP URL (every node serves the whole cluster)."""
        if not self.nodes:
            raise ServerError("the OpenSearch cluster has not been started")
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def describe(self) -> str:
        """A line for the cluster, then one per node."""
        lines = [f"OpenSearch cluster of {len(self.nodes)} nodes at {self.url if self.nodes else '(not started)'}"]
        return "\n".join(lines + [f"node {i}: {node.describe()}" for i, node in enumerate(self.nodes)])

    def __enter__(self) -> OpenSearchCluster:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> str:
        """Start every node at once, wait until the cluster lists them all and is green; returns the first node's URL."""
        if self.nodes:
            raise ServerError("the OpenSearch cluster is already started")
        host = "127.0.0.1"
        ports = [(free_port(host), free_port(host)) for _ in range(self.size)]
        names = [f"node-{i}" for i in range(self.size)]
        cluster_name = f"splade-connectors-{uuid.uuid4().hex[:8]}"
        seeds = [f"{host}:{transport}" for _, transport in ports]
        self.nodes = [
            OpenSearchClusterNode(
                self.version, name=name, cluster_name=cluster_name, http_port=http, transport_port=transport,
                seed_hosts=seeds, initial_managers=names, heap=self.heap, host=host,
                startup_timeout=self.startup_timeout, tie_to_parent=self.tie_to_parent,
            )
            for name, (http, transport) in zip(names, ports)
        ]
        try:
            with ThreadPoolExecutor(self.size, thread_name_prefix="opensearch-node") as pool:
                for future in [pool.submit(node.start, 1) for node in self.nodes]:
                    future.result()
            self.wait_for_nodes()
        except BaseException:
            self.stop()
            raise
        log.info("%s", self.describe())
        return self.url

    def health(self, node: int = 0, **params: str) -> dict[str, Any]:
        """``_cluster/health`` as one node sees it (``params``: wait_for_nodes, wait_for_status, timeout...)."""
        query = "&".join(f"{k}={v}" for k, v in params.items())
        with urllib.request.urlopen(f"{self.nodes[node].url}/_cluster/health?{query}", timeout=70) as response:
            return dict(json.loads(response.read()))

    def cluster_manager(self, node: int = 0) -> int:
        """The index in `nodes` of the elected cluster manager (as ``node`` sees it)."""
        with urllib.request.urlopen(f"{self.nodes[node].url}/_cat/cluster_manager?h=node", timeout=10) as response:
            name = response.read().decode().strip()
        return next(i for i, n in enumerate(self.nodes) if n.name == name)

    def wait_for_nodes(self, status: str = "green", node: int = 0, timeout: float | None = None) -> dict[str, Any]:
        """Wait until ``node`` sees every node in the cluster and ``status`` (`ServerError` after ``timeout``)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.startup_timeout)
        seen: object = None
        while time.monotonic() < deadline:
            try:
                seen = health = self.health(node, wait_for_nodes=str(self.size), wait_for_status=status, timeout="5s")
                if not health.get("timed_out") and health.get("number_of_nodes") == self.size:
                    return health
            except (OSError, ValueError) as exc:  # 503 before a cluster manager is elected
                seen = exc
            time.sleep(0.5)
        raise ServerError(f"the OpenSearch cluster did not reach {self.size} nodes and {status} in time; last health: {seen}")

    def kill(self, node: int) -> None:
        """SIGKILL one node; its data and ports are kept for `restart`."""
        self.nodes[node].kill()

    def restart(self, node: int) -> None:
        """Start a killed node again on its data and ports; it rejoins the cluster."""
        self.nodes[node].start(1)

    def stop(self) -> None:
        """Stop every node and delete their run folders."""
        for node in reversed(self.nodes):
            try:
                node.stop()
            except Exception:  # stop the others whatever one does
                log.exception("stopping OpenSearch node %s failed", node.describe())
        self.nodes = []


# ---------------------------------------------------------------- CLI: the server verbs plus `cluster`


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    add_server_options(parser, "fetch")
    parser.add_argument("--nodes", type=int, default=3, help="number of nodes (default: 3)")
    parser.add_argument("--heap", default="384m", help="JVM heap of each node (default: 384m)")


def _cluster(args: argparse.Namespace) -> Any:
    """The local cluster ``cluster`` runs (an `OpenSearchCluster`)."""
    return OpenSearchCluster(args.nodes, args.version, heap=check_heap(args.heap))


# `splade-connectors opensearch-server` and `python -m` on this module run these.
COMMANDS = dataclasses.replace(
    SERVER_COMMANDS,
    extra_verbs={
        "cluster": ExtraVerb(
            help="start a local OpenSearch cluster (--nodes, each its own ports, data and JVM) until Ctrl-C or SIGTERM",
            add_options=_cluster_options,
            open=_cluster,
        )
    },
)
main = COMMANDS.main  # the CLI; failures raise `ServerError`

if __name__ == "__main__":
    sys.exit(COMMANDS.script())

"""A local Qdrant cluster: several native Qdrant servers on 127.0.0.1 forming one cluster (for tests and local use).

Each node is a `QdrantClusterNode` (a `QdrantServer` with ``cluster.enabled`` and a peer-to-peer port): its
own HTTP, gRPC and p2p ports, run folder, storage and process. The first node starts the cluster
(``--uri http://127.0.0.1:<p2p>``); the others join it (``--bootstrap`` the first node's p2p URI).
`QdrantCluster.start` waits until every node answers and the first one lists them all as peers;
``kill(i)`` + ``restart(i)`` SIGKILLs a node and brings it back on the same storage and ports, where it
rejoins and its replicas are recovered from the others (what the fault tests need). ``stop()`` stops
every node and deletes their run folders.

Python API::

    from splade_connectors.live.qdrant_cluster import QdrantCluster
    with QdrantCluster(nodes=3) as cluster:
        print(cluster.url, cluster.urls)   # any node's URL serves the whole cluster

CLI: ``splade-connectors qdrant-server cluster --nodes 3`` (blocks until Ctrl-C, then stops every node).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from splade_connectors.errors import ConfigError, ServerError
from splade_connectors.live.managed import Launch, free_port
from splade_connectors.live.qdrant_server import QdrantServer

log = logging.getLogger(__name__)


class QdrantClusterNode(QdrantServer):
    """One node of a `QdrantCluster`: a Qdrant server with clustering on and its own p2p port."""

    run_prefix = "splade-qdrant-node-"

    def __init__(self, binary: str | Path | None = None, *, bootstrap: str | None = None, **options: Any) -> None:
        super().__init__(binary, **options)
        self.bootstrap = bootstrap  # p2p URI of the first node (None: this node starts the cluster)
        self.p2p_port: int | None = None

    @property
    def p2p_uri(self) -> str:
        """This node's peer-to-peer URI (`ServerError` before the first start)."""
        if self.p2p_port is None:
            raise ServerError("the Qdrant cluster node has not been started")
        return f"http://{self.host}:{self.p2p_port}"

    def _choose_ports(self, retry: bool) -> None:
        """The HTTP and gRPC ports as a single server, plus the p2p port (kept across a restart like the others)."""
        super()._choose_ports(retry)
        if not self._keep_ports or self.p2p_port is None:
            self.p2p_port = free_port(self.host)

    def _launch(self, tie: bool) -> Launch:
        launch = super()._launch(tie)
        assert self.run_dir is not None and self.p2p_port is not None
        config = self.run_dir / "config.yaml"
        config.write_text(
            config.read_text(encoding="utf-8") + f"cluster:\n  enabled: true\n  p2p:\n    port: {self.p2p_port}\n", encoding="utf-8"
        )
        argv = [*launch.argv, "--uri", self.p2p_uri]
        if self.bootstrap is not None:
            argv += ["--bootstrap", self.bootstrap]
        return Launch(argv, launch.env, launch.preexec)

    def _details(self) -> list[str]:
        return [f"p2p port {self.p2p_port}", *super()._details()]


class QdrantCluster:
    """``nodes`` Qdrant servers on 127.0.0.1 forming one cluster (context manager: start on enter, stop on exit)."""

    def __init__(
        self,
        nodes: int = 3,
        binary: str | Path | None = None,
        *,
        api_key: str | None = None,
        startup_timeout: float = 120.0,
        tie_to_parent: bool = True,
    ) -> None:
        if nodes < 1:
            raise ConfigError(f"a cluster needs at least one node, not {nodes}")
        self.size = nodes
        self.binary = binary
        self.api_key = api_key
        self.startup_timeout = startup_timeout
        self.tie_to_parent = tie_to_parent
        self.nodes: list[QdrantClusterNode] = []

    @property
    def url(self) -> str:
        """The first node's HTTP URL (every node serves the whole cluster)."""
        if not self.nodes:
            raise ServerError("the Qdrant cluster has not been started")
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def version(self) -> str | None:
        return self.nodes[0].version if self.nodes else None

    def describe(self) -> str:
        """A line for the cluster, then one per node."""
        lines = [f"Qdrant cluster of {len(self.nodes)} nodes at {self.url if self.nodes else '(not started)'}"]
        return "\n".join(lines + [f"node {i}: {node.describe()}" for i, node in enumerate(self.nodes)])

    def __enter__(self) -> QdrantCluster:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _node(self, bootstrap: str | None) -> QdrantClusterNode:
        return QdrantClusterNode(
            self.binary, bootstrap=bootstrap, api_key=self.api_key, startup_timeout=self.startup_timeout,
            tie_to_parent=self.tie_to_parent,
        )

    def start(self) -> str:
        """Start the first node, then the others joining it; wait until all are peers. Returns the first node's URL."""
        if self.nodes:
            raise ServerError("the Qdrant cluster is already started")
        try:
            first = self._node(None)
            self.nodes.append(first)
            first.start()
            for _ in range(1, self.size):
                node = self._node(first.p2p_uri)
                self.nodes.append(node)
                node.start()
            self.wait_for_peers()
        except BaseException:
            self.stop()
            raise
        log.info("%s", self.describe())
        return self.url

    def peers(self, node: int = 0) -> dict[str, Any]:
        """The ``/cluster`` answer of a node (its view of the peers and of consensus)."""
        headers = {"api-key": self.api_key} if self.api_key else {}
        request = urllib.request.Request(self.nodes[node].url + "/cluster", headers=headers)
        with urllib.request.urlopen(request, timeout=5) as response:
            result = json.loads(response.read())["result"]
        return dict(result)

    def wait_for_peers(self, timeout: float | None = None) -> None:
        """Wait until the first node lists every node as a peer (`ServerError` after ``timeout``)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.startup_timeout)
        seen: object = None
        while time.monotonic() < deadline:
            try:
                seen = self.peers()
                if len(seen.get("peers") or {}) >= self.size:
                    return
            except (OSError, ValueError, KeyError) as exc:
                seen = exc
            time.sleep(0.5)
        raise ServerError(f"the Qdrant cluster did not form {self.size} peers in time; last /cluster: {seen}")

    def kill(self, node: int) -> None:
        """SIGKILL one node; its storage and ports are kept for `restart`."""
        self.nodes[node].kill()

    def restart(self, node: int) -> None:
        """Start a killed node again on its storage and ports; it rejoins the cluster."""
        self.nodes[node].start()

    def stop(self) -> None:
        """Stop every node (the joiners first) and delete their run folders."""
        for node in reversed(self.nodes):
            try:
                node.stop()
            except Exception:  # stop the others whatever one does
                log.exception("stopping Qdrant node %s failed", node.describe())
        self.nodes = []

"""Qdrant clusters: shard/replication settings, and a node SIGKILLed mid-ingestion on a real 3-node cluster.

The cluster tests are marked ``cluster`` (a quick local run leaves them out with ``-m "not cluster"``; CI runs them).
The documents are encoded by a deterministic hashing encoder: the fault test is about the store, not the model,
and the shipped model would take minutes to encode a few thousand documents on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from typing import Any

import pytest
from pydantic import ValidationError

from splade_connectors.cli.stores import add_qdrant_options, add_query_options, qdrant_options
from splade_connectors.errors import ConfigMismatchError, StoreUnavailableError
from splade_connectors.live.qdrant_cluster import QdrantCluster
from splade_connectors.qdrant.config import QdrantConfig
from splade_connectors.registry import open_store
from tests.node_faults import assert_stored_exactly, fault_documents, ingest_through_a_kill

DOCS = 3000
KILL_AFTER = 900  # documents acknowledged before the node is killed


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        result = json.loads(response.read())["result"]
    assert isinstance(result, dict)
    return result


def _victim_peer(cluster: QdrantCluster, node: int) -> str:
    """The peer id of a node, from the first node's list of peers (matched by p2p port)."""
    peers = _get(f"{cluster.url}/cluster")["peers"]
    port = cluster.nodes[node].p2p_port
    return next(peer for peer, info in peers.items() if info["uri"].rstrip("/").endswith(f":{port}"))


def _cluster_config(cluster: QdrantCluster, collection: str, node: int = 0, **settings: Any) -> QdrantConfig:
    return QdrantConfig(url=cluster.nodes[node].url, collection=collection, timeout=10, **settings)


# ---------------------------------------------------------------- config (no server)


def test_cluster_settings_need_a_server() -> None:
    with pytest.raises(ValidationError, match="shard_number only apply to a Qdrant server"):
        QdrantConfig(shard_number=3)
    with pytest.raises(ValidationError, match="replication_factor only apply to a Qdrant server"):
        QdrantConfig(path="/tmp/x", local_mode=True, replication_factor=2)
    with pytest.raises(ValidationError, match="write_consistency_factor 3 exceeds replication_factor 2"):
        QdrantConfig(url="http://localhost:6333", replication_factor=2, write_consistency_factor=3)


def test_cluster_flags_reach_the_config() -> None:
    parser = argparse.ArgumentParser()
    add_qdrant_options(parser)
    add_query_options(parser)
    args = parser.parse_args(
        ["--qdrant-url", "http://localhost:6333", "--qdrant-shards", "3", "--qdrant-replication-factor", "2", "--qdrant-write-consistency", "1"]
    )
    config = QdrantConfig(**qdrant_options(args, default_path=None))
    assert (config.shard_number, config.replication_factor, config.write_consistency_factor) == (3, 2, 1)
    assert QdrantConfig(**qdrant_options(parser.parse_args([]), default_path=None)).shard_number is None


# ---------------------------------------------------------------- live cluster


@pytest.mark.live
@pytest.mark.cluster
def test_cluster_settings_are_applied_and_checked(qdrant_cluster: QdrantCluster) -> None:
    config = _cluster_config(qdrant_cluster, "settings", shard_number=3, replication_factor=2, write_consistency_factor=2)
    store = open_store(config)
    try:
        params = _get(f"{qdrant_cluster.url}/collections/settings")["config"]["params"]
        assert (params["shard_number"], params["replication_factor"], params["write_consistency_factor"]) == (3, 2, 2)
        shards = _get(f"{qdrant_cluster.url}/collections/settings/cluster")
        replicas = [s["shard_id"] for s in shards["local_shards"]] + [s["shard_id"] for s in shards["remote_shards"]]
        assert sorted(replicas) == [0, 0, 1, 1, 2, 2]  # 3 shards, 2 copies each, spread over the nodes
        open_store(_cluster_config(qdrant_cluster, "settings", node=1)).close()  # unnamed settings: any is fine
        with pytest.raises(ConfigMismatchError, match="shard_number is 3, config asks for 2") as caught:
            open_store(_cluster_config(qdrant_cluster, "settings", shard_number=2, replication_factor=1))
        assert "replication_factor is 2, config asks for 1" in str(caught.value)
    finally:
        store.drop()
        store.close()


@pytest.mark.live
@pytest.mark.cluster
def test_node_killed_mid_ingestion_loses_and_duplicates_nothing(qdrant_cluster: QdrantCluster) -> None:
    """3 shards x 2 copies; a joining node is SIGKILLed part-way: ingestion finishes, queries keep answering, the node rejoins."""
    victim = 2
    config = _cluster_config(qdrant_cluster, "faults", shard_number=3, replication_factor=2, write_consistency_factor=1)
    writer = open_store(config)
    reader = open_store(_cluster_config(qdrant_cluster, "faults", node=1))
    documents = fault_documents(DOCS)
    try:
        report, _ = ingest_through_a_kill(writer, reader, documents, lambda: qdrant_cluster.kill(victim), kill_after=KILL_AFTER, wait=60)
        assert report.accepted == DOCS
        assert_stored_exactly(writer, reader, documents)

        with pytest.raises(StoreUnavailableError) as caught:  # the dead node itself: an error the retry policy retries
            open_store(_cluster_config(qdrant_cluster, "faults", node=victim))
        assert caught.value.transient
        victim_id = _victim_peer(qdrant_cluster, victim)
        victim_states: set[str] = set()
        deadline = time.monotonic() + 60
        while victim_states != {"Dead"} and time.monotonic() < deadline:  # its copies missed writes (consensus marks them)
            remote = _get(f"{qdrant_cluster.url}/collections/faults/cluster")["remote_shards"]
            victim_states = {s["state"] for s in remote if str(s["peer_id"]) == victim_id}
            time.sleep(0.2)
        assert victim_states == {"Dead"}

        qdrant_cluster.restart(victim)
        qdrant_cluster.wait_for_peers()
        deadline = time.monotonic() + 180
        states: list[str] = []
        while time.monotonic() < deadline:  # its replicas are recovered from the surviving copies
            info = _get(f"{qdrant_cluster.nodes[victim].url}/collections/faults/cluster")
            states = [s["state"] for s in info["local_shards"]] + [s["state"] for s in info["remote_shards"]]
            if len(states) == 6 and all(s == "Active" for s in states):
                break
            time.sleep(1.0)
        assert states == ["Active"] * 6, states
        on_victim = open_store(_cluster_config(qdrant_cluster, "faults", node=victim))
        try:
            assert on_victim.count() == DOCS
            # the recovered copies hold everything: with another node down, every shard is served by node 0 or the victim
            qdrant_cluster.kill(1)
            assert on_victim.count() == DOCS
            assert len({d for page in on_victim.iter_doc_ids(batch_size=500) for d in page}) == DOCS
        finally:
            on_victim.close()
            qdrant_cluster.restart(1)
            qdrant_cluster.wait_for_peers()
    finally:
        if not qdrant_cluster.nodes[victim].running:
            qdrant_cluster.restart(victim)  # leave the module's cluster whole
        reader.close()
        writer.drop()
        writer.close()

"""OpenSearch clusters: shards/replicas/wait_for_active_shards settings, and a node SIGKILLed mid-ingestion on 3 nodes.

The cluster tests are marked ``cluster`` (a quick local run leaves them out with ``-m "not cluster"``; CI runs them).
The documents are encoded by a deterministic hashing encoder: the fault test is about the store, not the model.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from typing import Any

import pytest
from pydantic import ValidationError

from splade_connectors.cli.stores import add_opensearch_options, add_query_options, opensearch_options
from splade_connectors.errors import ConfigMismatchError, StoreUnavailableError
from splade_connectors.live.opensearch_cluster import OpenSearchCluster
from splade_connectors.opensearch.config import OpenSearchConfig
from splade_connectors.opensearch.store import OpenSearchStore
from splade_connectors.registry import open_store
from tests.node_faults import assert_stored_exactly, fault_documents, ingest_through_a_kill

DOCS = 3000
KILL_AFTER = 900  # documents acknowledged before the node is killed


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _config(hosts: list[str], index: str, **settings: Any) -> OpenSearchConfig:
    return OpenSearchConfig(hosts=hosts, index=index, timeout=30, **settings)


# ---------------------------------------------------------------- config (no server)


def test_wait_for_active_shards_must_be_reachable() -> None:
    assert OpenSearchConfig(wait_for_active_shards="all").wait_for_active_shards == "all"
    assert OpenSearchConfig(replicas=2, ingest_replicas=2, wait_for_active_shards=3).wait_for_active_shards == 3
    with pytest.raises(ValidationError, match="wait_for_active_shards 2 exceeds the 1 shard copies"):
        OpenSearchConfig(replicas=1, wait_for_active_shards=2)  # ingest_replicas 0: a bulk load would wait in vain
    with pytest.raises(ValidationError, match="wait_for_active_shards must be >= 1"):
        OpenSearchConfig(wait_for_active_shards=0)


def test_cluster_flags_reach_the_config() -> None:
    parser = argparse.ArgumentParser()
    add_opensearch_options(parser)
    add_query_options(parser)
    args = parser.parse_args(
        ["--opensearch-shards", "3", "--opensearch-replicas", "1", "--opensearch-ingest-replicas", "1",
         "--opensearch-wait-for-active-shards", "2"]
    )
    config = OpenSearchConfig(**opensearch_options(args))
    assert (config.shards, config.replicas, config.ingest_replicas, config.wait_for_active_shards) == (3, 1, 1, 2)
    assert {"shards", "replicas"} <= config.model_fields_set  # named: checked against an existing index
    default = OpenSearchConfig(**opensearch_options(parser.parse_args(["--opensearch-wait-for-active-shards", "ALL"])))
    assert default.wait_for_active_shards == "all" and not {"shards", "replicas"} & default.model_fields_set
    with pytest.raises(SystemExit):
        parser.parse_args(["--opensearch-wait-for-active-shards", "0"])


# ---------------------------------------------------------------- live cluster


@pytest.mark.live
@pytest.mark.cluster
def test_cluster_settings_are_applied_and_checked(opensearch_cluster: OpenSearchCluster) -> None:
    config = _config(opensearch_cluster.urls, "settings", shards=3, replicas=1, wait_for_active_shards="all")
    store = open_store(config)
    try:
        shards = _get(f"{opensearch_cluster.url}/_cat/shards/settings?format=json")
        assert sorted((s["shard"], s["prirep"], s["state"]) for s in shards) == [
            (str(n), kind, "STARTED") for n in range(3) for kind in ("p", "r")
        ]  # created with every copy active: 'all' waited for the replicas
        assert len({s["node"] for s in shards}) == 3  # spread over the nodes
        open_store(_config([opensearch_cluster.urls[1]], "settings")).close()  # unnamed layout: any is fine
        with pytest.raises(ConfigMismatchError, match="number_of_shards is 3, config asks for 2") as caught:
            open_store(_config(opensearch_cluster.urls, "settings", shards=2, replicas=2))
        assert "number_of_replicas is 1, config asks for 2" in str(caught.value)
    finally:
        store.drop()
        store.close()


@pytest.mark.live
@pytest.mark.cluster
def test_node_killed_mid_ingestion_loses_and_duplicates_nothing(opensearch_cluster: OpenSearchCluster) -> None:
    """3 shards x 1 replica; a node that is not the cluster manager is SIGKILLed part-way: nothing lost, it rejoins."""
    cluster = opensearch_cluster
    manager = cluster.cluster_manager()
    victim = max(i for i in range(cluster.size) if i != manager)
    survivor = manager  # queries go through a node that stays up
    # ingest_replicas 1: every acknowledged write is on two nodes during the load too (the default 0 rebuilds replicas after it)
    config = _config(
        cluster.urls, "faults", shards=3, replicas=1, ingest_replicas=1, wait_for_active_shards=1,
        ingest_refresh_interval="1s", max_retries=3,
    )
    writer = open_store(config)
    reader = open_store(_config([cluster.urls[survivor]], "faults"))
    assert isinstance(reader, OpenSearchStore)
    documents = fault_documents(DOCS)
    try:
        report, _ = ingest_through_a_kill(
            writer, reader, documents, lambda: cluster.kill(victim), kill_after=KILL_AFTER, after_kill=reader.refresh
        )
        assert report.accepted == DOCS
        assert_stored_exactly(writer, reader, documents)

        with pytest.raises(StoreUnavailableError) as caught:  # the dead node itself: an error the retry policy retries
            open_store(_config([cluster.urls[victim]], "faults", max_retries=0))
        assert caught.value.transient

        cluster.restart(victim)
        health = cluster.wait_for_nodes("green", node=victim)  # it rejoined and its copies are recovered
        assert health["number_of_nodes"] == cluster.size and health["unassigned_shards"] == 0
        on_victim = open_store(_config([cluster.urls[victim]], "faults"))
        try:
            assert on_victim.count() == DOCS
            assert len({d for page in on_victim.iter_doc_ids(batch_size=500) for d in page}) == DOCS
        finally:
            on_victim.close()
    finally:
        if not cluster.nodes[victim].running:
            cluster.restart(victim)  # leave the module's cluster whole
        reader.close()
        writer.drop()
        writer.close()

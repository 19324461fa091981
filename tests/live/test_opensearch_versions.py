"""A smoke test of the OpenSearch adapter on other OpenSearch versions than the suite's (e.g. 3.x beside 2.19).

Opt-in: ``SPLADE_CONNECTORS_OPENSEARCH_SMOKE_VERSIONS=3.8.0`` (comma-separated) starts a native server of each
version (assembled from Maven Central, on a JDK the version supports: 21+ for 3.x) and runs one short round
trip through the store: create, bulk ingest, count, search, fetch vectors, payloads, drop. Unset, it skips;
set, a version that cannot start fails. The whole suite on one version: ``SPLADE_CONNECTORS_OPENSEARCH_VERSION``.
"""

from __future__ import annotations

import os

import pytest

from splade_connectors.ingest import IngestConfig, ingest
from splade_connectors.live.opensearch_native import NativeOpenSearch
from splade_connectors.opensearch.config import OpenSearchConfig
from splade_connectors.records import Document
from splade_connectors.registry import open_store
from tests.node_faults import HashingEncoder

SMOKE_ENV = "SPLADE_CONNECTORS_OPENSEARCH_SMOKE_VERSIONS"
VERSIONS = [v.strip() for v in os.environ.get(SMOKE_ENV, "").split(",") if v.strip()]


@pytest.mark.live
@pytest.mark.skipif(not VERSIONS, reason=f"set {SMOKE_ENV} (e.g. 3.8.0) to smoke-test other OpenSearch versions")
@pytest.mark.parametrize("version", VERSIONS or ["none"])
def test_store_round_trip_on_another_version(version: str) -> None:
    documents = [Document(id=f"d{i}", text=f"topic{i % 5} item{i} shared", metadata={"n": i}) for i in range(200)]
    encoder = HashingEncoder()
    with NativeOpenSearch(version, heap="384m") as server:
        assert server.version == version
        store = open_store(OpenSearchConfig(hosts=[server.url], index="smoke", replicas=0, shards=2))
        try:
            report = ingest(documents, encoder, store, IngestConfig(batch_size=64))
            assert report.accepted == len(documents) and store.count() == len(documents)
            query = encoder.encode("topic3 item8")
            (hits,) = store.search_batch([query], top_k=3)
            assert hits[0].id == "d8"  # the only document with both terms
            assert hits[0].score == pytest.approx(float((query.values**2).sum()), rel=1e-2)
            stored = store.fetch_vectors(["d8", "d199"])
            assert stored["d199"].to_lists()[0] == encoder.encode(documents[199].text).to_lists()[0]
            assert store.fetch_payloads(["d8"], ["metadata"])["d8"]["metadata"] == {"n": 8}
        finally:
            store.drop()
            store.close()

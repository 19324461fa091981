"""A live OpenSearch answers, has ``rank_features`` and shows the dotted-name pitfall."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.live_stores import LiveStore

opensearchpy = pytest.importorskip("opensearchpy")

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def client(opensearch_store: LiveStore) -> Any:
    """opensearch-py client for the session's store."""
    auth = (opensearch_store.username, opensearch_store.password or "") if opensearch_store.username else None
    return opensearchpy.OpenSearch(
        hosts=[opensearch_store.url],
        http_auth=auth,
        verify_certs=opensearch_store.verify_certs,
        ssl_show_warn=False,
        timeout=30,
    )


@pytest.fixture
def sparse_index(client: Any) -> Iterator[str]:
    """A fresh index with one ``rank_features`` field ``sparse``; deleted afterwards."""
    name = f"splade-live-{uuid.uuid4().hex[:10]}"
    mappings = {"properties": {"sparse": {"type": "rank_features"}}}
    client.indices.create(index=name, body={"mappings": mappings, "settings": {"number_of_replicas": 0}})
    yield name
    client.indices.delete(index=name, ignore_unavailable=True)


def _index_doc(client: Any, index: str, features: dict[str, float]) -> None:
    """Index one document (id 1) and make it searchable."""
    client.index(index=index, id="1", body={"sparse": features}, refresh=True)


def _rank_feature_hits(client: Any, index: str, feature: str, boost: float) -> list[dict[str, Any]]:
    """Hits of a linear ``rank_feature`` query on ``sparse.<feature>``."""
    query = {"rank_feature": {"field": f"sparse.{feature}", "linear": {}, "boost": boost}}
    return list(client.search(index=index, body={"query": query})["hits"]["hits"])


def test_cluster_reachable_and_reports_version(client: Any, opensearch_store: LiveStore) -> None:
    info = client.info()
    assert info["version"]["distribution"] == "opensearch"
    if opensearch_store.version:
        assert info["version"]["number"] == opensearch_store.version
    assert client.cluster.health()["status"] in {"green", "yellow"}


def test_rank_feature_linear_score_is_weight_times_boost(client: Any, sparse_index: str) -> None:
    _index_doc(client, sparse_index, {"hello": 2.0, "world": 0.5, "odd": 1.2345})

    hits = _rank_feature_hits(client, sparse_index, "hello", boost=3.0)
    assert [h["_id"] for h in hits] == ["1"]
    assert hits[0]["_score"] == pytest.approx(6.0, rel=1e-6)

    # stored with ~9 significant bits: 1.2345 -> 1.234375
    odd = _rank_feature_hits(client, sparse_index, "odd", boost=2.0)
    assert odd[0]["_score"] == pytest.approx(2 * 1.2345, rel=5e-3)

    # exact sparse dot product = bool.should of linear clauses with boost = query weight
    should = [
        {"rank_feature": {"field": f"sparse.{f}", "linear": {}, "boost": w}}
        for f, w in {"hello": 3.0, "world": 4.0}.items()
    ]
    result = client.search(index=sparse_index, body={"query": {"bool": {"should": should}}})
    assert result["hits"]["hits"][0]["_score"] == pytest.approx(2.0 * 3.0 + 0.5 * 4.0, rel=1e-6)


def test_dotted_feature_name_is_indexed_but_not_found(client: Any, sparse_index: str) -> None:
    """The query splits ``sparse.u.s.`` at the last dot and silently matches nothing."""
    _index_doc(client, sparse_index, {"u.s.": 1.5, "a.b": 2.0, "us": 3.0})

    stored = client.get(index=sparse_index, id="1")["_source"]["sparse"]
    assert stored == {"u.s.": 1.5, "a.b": 2.0, "us": 3.0}  # accepted as-is at index time
    assert _rank_feature_hits(client, sparse_index, "u.s.", boost=1.0) == []
    assert _rank_feature_hits(client, sparse_index, "a.b", boost=1.0) == []
    assert [h["_id"] for h in _rank_feature_hits(client, sparse_index, "us", boost=1.0)] == ["1"]

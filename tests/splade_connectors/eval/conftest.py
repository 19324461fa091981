"""Fixtures for evaluation tests: the SciFact slice as an encoded evaluation dataset."""

from __future__ import annotations

import pytest

from splade_connectors.eval.datasets import RetrievalDataset
from splade_connectors.eval.encoding import EncodedDataset
from tests.conftest import BeirSlice, EncodedSlice


def slice_dataset(beir: BeirSlice, name: str = "scifact-1k") -> RetrievalDataset:
    """The slice as a `RetrievalDataset` (title + text, as the `scifact_encoded` fixture encodes it)."""
    return RetrievalDataset(
        name=name,
        corpus={d["_id"]: {"title": d["title"], "text": d["text"]} for d in beir.corpus},
        queries=dict(beir.queries), qrels={q: dict(r) for q, r in beir.qrels.items()}, with_title=True,
    )


@pytest.fixture(scope="session")
def scifact_eval_data(scifact_encoded: EncodedSlice) -> EncodedDataset:
    """SciFact 1k slice, vectors reused from the session's `scifact_encoded` (encoded once)."""
    dataset = slice_dataset(scifact_encoded.slice)
    doc_ids = list(dataset.corpus)
    query_ids = dataset.eval_query_ids()
    return EncodedDataset(
        dataset=dataset, doc_ids=doc_ids, doc_vectors=[scifact_encoded.doc_vectors[d] for d in doc_ids],
        query_ids=query_ids, query_vectors=[scifact_encoded.query_vectors[q] for q in query_ids], dim=30522,
    )

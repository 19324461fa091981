"""Parity on the real engines: all 300 SciFact test queries over the full corpus (5,183 documents) give the
same top-10 ids, with scores equal to float32 precision, on the server, on the embedded engine and with
exact in-memory scoring (float64 dot products). Local mode is left out here: it is a pure-Python scan
(~0.5 s per query at this size); the 1,000-document slice in test_scifact.py covers it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from splade_connectors.qdrant import QdrantConfig, QdrantStore
from splade_connectors.records import Document, EncodedDocument
from tests.live_stores import LiveStore, record_qdrant_backend
from tests.splade_connectors.qdrant.conftest import EncodedCorpus
from trainer.sparse import to_csr

pytestmark = [pytest.mark.live, pytest.mark.slow]

TOP_K = 10
# float32 scores of ~20-term dot products against float64 exact ones: a few ulps (2^-23 ~ 1.2e-7) per term
FLOAT32_RTOL = 2e-6


def load(store: QdrantStore, corpus: EncodedCorpus) -> QdrantStore:
    store.begin_ingest()
    for start in range(0, len(corpus.doc_ids), 512):
        store.upsert([
            EncodedDocument(document=Document(id=doc_id, text=""), sparse=vector)
            for doc_id, vector in zip(corpus.doc_ids[start : start + 512], corpus.doc_vectors[start : start + 512])
        ])
    store.finish_ingest()
    return store


@pytest.fixture(scope="module", params=["server", "edge"])
def full_store(request: pytest.FixtureRequest, scifact_full: EncodedCorpus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QdrantStore]:
    name = f"parity-{uuid.uuid4().hex[:8]}"
    if request.param == "server":
        live: LiveStore = request.getfixturevalue("qdrant_server_store")
        config = QdrantConfig(url=live.url, api_key=live.api_key, grpc_port=live.grpc_port, collection=name)
    else:
        record_qdrant_backend("edge")
        config = QdrantConfig(path=str(tmp_path_factory.mktemp("parity")), collection=name)
    store = load(QdrantStore(config).open(), scifact_full)
    try:
        yield store
    finally:
        store.drop()
        store.close()


@pytest.fixture(scope="module")
def exact(scifact_full: EncodedCorpus) -> np.ndarray:
    """float64 dot products, queries x documents."""
    docs = to_csr(scifact_full.doc_vectors, 30522).astype(np.float64)
    queries = to_csr(scifact_full.query_vectors, 30522).astype(np.float64)
    return (queries @ docs.T).toarray()


def test_all_test_queries_give_the_exact_top10(full_store: QdrantStore, scifact_full: EncodedCorpus, exact: np.ndarray) -> None:
    assert len(scifact_full.query_ids) == 300 and len(scifact_full.doc_ids) == 5183
    assert full_store.count() == 5183
    column = {d: i for i, d in enumerate(scifact_full.doc_ids)}
    results = full_store.search_batch(scifact_full.query_vectors, top_k=TOP_K)
    identical = 0
    worst = 0.0
    for row, (qid, hits) in enumerate(zip(scifact_full.query_ids, results)):
        scores = exact[row]
        order = np.argsort(-scores, kind="stable")[:TOP_K]
        expected_ids = [scifact_full.doc_ids[i] for i in order if scores[i] > 0]
        got_ids = [h.id for h in hits]
        assert len(got_ids) == len(expected_ids), qid
        got = np.array([h.score for h in hits])
        # scores: each hit's score is its exact dot product, and the i-th score is the exact i-th best score
        np.testing.assert_allclose(got, scores[[column[d] for d in got_ids]], rtol=FLOAT32_RTOL, err_msg=qid)
        np.testing.assert_allclose(got, scores[order[: len(got)]], rtol=FLOAT32_RTOL, err_msg=qid)
        worst = max(worst, float(np.max(np.abs(got - scores[[column[d] for d in got_ids]]) / scores[[column[d] for d in got_ids]], initial=0)))
        if got_ids == expected_ids:
            identical += 1
        else:  # only documents whose exact scores tie within float32 precision may trade places
            for position, (mine, theirs) in enumerate(zip(got_ids, expected_ids)):
                if mine != theirs:
                    assert scores[column[mine]] == pytest.approx(scores[column[theirs]], rel=FLOAT32_RTOL), (qid, position)
    # the id lists themselves are the same for (nearly) every query: report how many and the largest deviation
    print(f"{full_store.describe()}: identical top-10 ids for {identical}/300 queries; max relative score error {worst:.2e}")
    assert identical >= 295


def test_server_and_embedded_agree_exactly(tmp_path: Path, request: pytest.FixtureRequest, scifact_full: EncodedCorpus) -> None:
    """Same engine code in both: the same top 10 with the same float32 scores, up to the order of the float32 sums.

    Scores are equal to the last bit when both collections have the same segment layout; the server's background
    optimizer may lay segments out differently, which changes the summation order by an ulp or two.
    """
    live: LiveStore = request.getfixturevalue("qdrant_server_store")
    name = f"parity-pair-{uuid.uuid4().hex[:8]}"
    server = load(QdrantStore(QdrantConfig(url=live.url, api_key=live.api_key, grpc_port=live.grpc_port, collection=name)).open(), scifact_full)
    embedded = load(QdrantStore(QdrantConfig(path=str(tmp_path), collection=name)).open(), scifact_full)
    try:
        a = server.search_batch(scifact_full.query_vectors, top_k=TOP_K)
        b = embedded.search_batch(scifact_full.query_vectors, top_k=TOP_K)
        bit_equal = 0
        for qid, mine, theirs in zip(scifact_full.query_ids, a, b):
            assert len(mine) == len(theirs), qid
            np.testing.assert_allclose([h.score for h in mine], [h.score for h in theirs], rtol=FLOAT32_RTOL, err_msg=qid)
            for position, (x, y) in enumerate(zip(mine, theirs)):  # ids may only trade places on float32 ties
                assert x.id == y.id or x.score == pytest.approx(y.score, rel=FLOAT32_RTOL), (qid, position)
            bit_equal += [(h.id, h.score) for h in mine] == [(h.id, h.score) for h in theirs]
        print(f"server and embedded engine: bit-equal top-10 for {bit_equal}/{len(a)} queries")
    finally:
        for store in (server, embedded):
            store.drop()
            store.close()

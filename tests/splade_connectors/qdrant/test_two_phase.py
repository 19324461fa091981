"""Two-phase queries on every Qdrant engine (server, embedded engine, local mode): exact scores, filters, hybrid.

The corpus is small and synthetic (Zipf-distributed terms, so common terms have long posting lists as in
SPLADE) and fast to write; every expectation is computed here with numpy from the vectors the store returns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from splade_connectors.fusion import fuse
from splade_connectors.qdrant import QdrantStore
from splade_connectors.records import Document, EncodedDocument
from splade_connectors.store import HybridQuery
from splade_connectors.two_phase import TwoPhase
from tests.splade_connectors.qdrant.conftest import QdrantTarget
from trainer.sparse import SparseVector

pytestmark = pytest.mark.live

DOCS, QUERIES, VOCAB, DENSE = 600, 24, 2000, 8
SPECS = [TwoPhase(ratio=0.4, expansion=5), TwoPhase(count=4, expansion=3)]


def _vector(rng: np.random.Generator, nnz: int) -> SparseVector:
    terms = np.unique(np.minimum(rng.zipf(1.3, size=nnz), VOCAB) - 1)
    return SparseVector(terms, rng.lognormal(0.0, 0.6, size=len(terms)).astype(np.float32))


class Corpus:
    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.ids = [f"d{i:04d}" for i in range(DOCS)]
        self.docs = [_vector(rng, 60) for _ in self.ids]
        self.dense = rng.normal(size=(DOCS, DENSE)).astype(np.float32).tolist()
        self.group = {d: "even" if i % 2 == 0 else "odd" for i, d in enumerate(self.ids)}
        self.queries = [_vector(rng, 30) for _ in range(QUERIES)]
        self.query_dense = rng.normal(size=(QUERIES, DENSE)).astype(np.float32).tolist()


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus()


@pytest.fixture(scope="module")
def store(qdrant_target: QdrantTarget, corpus: Corpus) -> QdrantStore:
    store = qdrant_target.new_store("two-phase", dense_name="dense", dense_size=DENSE, payload_indexes={"group": "keyword"})
    store.upsert([
        EncodedDocument(document=Document(id=d, text=d, metadata={"group": corpus.group[d]}), sparse=v, dense=e)
        for d, v, e in zip(corpus.ids, corpus.docs, corpus.dense)
    ])
    store.finish_ingest()
    return store


@pytest.fixture(scope="module")
def stored(store: QdrantStore, corpus: Corpus) -> dict[str, SparseVector]:
    """The vectors as the store holds them (scores are computed from these)."""
    vectors = store.fetch_vectors(corpus.ids)
    assert len(vectors) == DOCS
    return vectors


def _dot(query: SparseVector, doc: SparseVector) -> float:
    return float(query.dot(doc))


def _ranked(query: SparseVector, stored: dict[str, SparseVector], among: Any, k: int = 10) -> list[tuple[str, float]]:
    """Top-k (id, exact score) over the documents `among`, positive scores only, best first."""
    scored = [(d, _dot(query, stored[d])) for d in among]
    scored = [(d, s) for d, s in scored if s > 0]
    return sorted(scored, key=lambda p: -p[1])[:k]


def _ids(hits: list[Any]) -> list[str]:
    return [h.id for h in hits]


@pytest.mark.parametrize("spec", [TwoPhase(ratio=0.0), TwoPhase(count=10_000)], ids=["ratio=0", "count=all"])
def test_keeping_every_term_in_phase_one_is_the_exact_query(store: QdrantStore, corpus: Corpus, spec: TwoPhase) -> None:
    exact = store.search_batch(corpus.queries, top_k=10, two_phase=None)
    phased = store.search_batch(corpus.queries, top_k=10, two_phase=spec)
    assert [[(h.id, h.score) for h in hits] for hits in phased] == [[(h.id, h.score) for h in hits] for hits in exact]


def test_a_window_over_the_whole_corpus_ranks_what_phase_one_finds_exactly(
    store: QdrantStore, corpus: Corpus, stored: dict[str, SparseVector]
) -> None:
    """Phase one drops only the lightest term; with a window larger than the corpus, the result is the exact
    top 10 of the documents sharing a kept term, with exact scores: the prefetch really feeds the rescoring."""
    differs = 0
    for query in corpus.queries:
        spec = TwoPhase(count=query.nnz - 1, expansion=DOCS)
        head, tail = spec.split(query)
        assert tail.nnz == 1
        (hits,) = store.search_batch([query], top_k=10, two_phase=spec)
        found = [d for d in corpus.ids if _dot(head, stored[d]) > 0]
        expected = _ranked(query, stored, found)
        assert [h.score for h in hits] == pytest.approx([s for _, s in expected], rel=1e-5)
        differs += [d for d, _ in expected] != [d for d, _ in _ranked(query, stored, corpus.ids)]
    print(f"\n[two-phase, window = corpus] {differs} of {len(corpus.queries)} queries miss a document only the dropped term matches")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
def test_returned_hits_carry_exact_dot_products(store: QdrantStore, corpus: Corpus, stored: dict[str, SparseVector], spec: TwoPhase) -> None:
    exact = store.search_batch(corpus.queries, top_k=10, two_phase=None)
    phased = store.search_batch(corpus.queries, top_k=10, two_phase=spec)
    recalls, tail_scored = [], 0
    for query, exact_hits, hits in zip(corpus.queries, exact, phased):
        head, tail = spec.split(query)
        assert tail.nnz > 0  # the spec really splits the query
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True) and len(hits) == 10
        for hit in hits:
            assert hit.score == pytest.approx(_dot(query, stored[hit.id]), rel=1e-5, abs=1e-6), hit.id
            tail_scored += _dot(tail, stored[hit.id]) > 0  # a score phase one alone would not give
        recalls.append(len(set(_ids(hits)) & set(_ids(exact_hits))) / len(exact_hits))
    assert tail_scored > 0
    print(f"\n[two-phase {spec.describe()}] recall@10 vs exact {np.mean(recalls):.3f}; {tail_scored} hits scored by tail terms too")


def test_filters_and_threshold_apply(store: QdrantStore, corpus: Corpus, stored: dict[str, SparseVector]) -> None:
    spec = TwoPhase(ratio=0.3, expansion=DOCS)  # the window covers every even document
    evens = [d for d in corpus.ids if corpus.group[d] == "even"]
    filtered = store.search_batch(corpus.queries, top_k=10, two_phase=spec, filter={"group": "even"})
    unfiltered = store.search_batch(corpus.queries, top_k=10, two_phase=spec)
    for query, hits, other in zip(corpus.queries, filtered, unfiltered):
        head = spec.split(query)[0]
        assert hits and all(corpus.group[h.id] == "even" for h in hits)
        expected = _ranked(query, stored, [d for d in evens if _dot(head, stored[d]) > 0])
        assert [h.score for h in hits] == pytest.approx([s for _, s in expected], rel=1e-5)
        threshold = other[4].score
        (kept,) = store.search_batch([query], top_k=10, two_phase=spec, score_threshold=threshold)
        assert _ids(kept) == [h.id for h in other if h.score >= threshold]


def test_the_configured_spec_is_the_default(store: QdrantStore, qdrant_target: QdrantTarget, corpus: Corpus) -> None:
    spec, queries = TwoPhase(count=4, expansion=3), corpus.queries[:6]
    phased, exact = store.search_batch(queries, top_k=10, two_phase=spec), store.search_batch(queries, top_k=10)
    store.close()  # the embedded engine lets one store at a time open a collection
    configured = qdrant_target.build(store.config.model_copy(update={"two_phase": spec})).open(create=False)
    try:
        assert configured.search_batch(queries, top_k=10) == phased
        assert configured.search_batch(queries, top_k=10, two_phase=None) == exact
    finally:
        configured.close()
        store.open(create=False)


@pytest.mark.parametrize("fusion", ["rrf", "linear"])
def test_hybrid_fuses_the_two_phase_sparse_list(store: QdrantStore, corpus: Corpus, fusion: str) -> None:
    spec, depth = TwoPhase(ratio=0.4, expansion=4), 20
    queries = corpus.queries[:8]
    sparse = store.search_batch(queries, top_k=depth, two_phase=spec)
    assert sparse != store.search_batch(queries, top_k=depth)  # the two-phase list differs from the exact one here
    dense = store.dense_search_batch(corpus.query_dense[:8], top_k=depth)
    fused = store.hybrid_search_batch(
        [HybridQuery(sparse=q, dense=e) for q, e in zip(queries, corpus.query_dense[:8])],
        top_k=10, fusion=fusion, candidates=depth, rrf_k=60, two_phase=spec, filter=None,
    )
    for s_hits, d_hits, got in zip(sparse, dense, fused):
        assert got
        if fusion == "rrf":
            hand: dict[str, float] = {}
            for hits in (s_hits, d_hits):
                for rank, hit in enumerate(hits, start=1):
                    hand[hit.id] = hand.get(hit.id, 0.0) + 1.0 / (60 + rank)
            assert {h.id: h.score for h in got} == pytest.approx({h.id: hand[h.id] for h in got}, rel=1e-5)
            assert sorted(hand.values(), reverse=True)[:10] == pytest.approx([h.score for h in got], rel=1e-5)
        else:
            hand_fused = fuse([s_hits, d_hits], "linear", top_k=10)
            assert [h.score for h in got] == pytest.approx([h.score for h in hand_fused], rel=1e-5)
    filtered = store.hybrid_search_batch(
        [HybridQuery(sparse=q, dense=e) for q, e in zip(queries, corpus.query_dense[:8])],
        top_k=10, fusion=fusion, candidates=depth, two_phase=spec, filter={"group": "odd"},
    )
    assert all(hits and all(corpus.group[h.id] == "odd" for h in hits) for hits in filtered)

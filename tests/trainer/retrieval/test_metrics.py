"""Metric functions equal sentence-transformers' own code on the same rankings."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from trainer.retrieval.metrics import SparsityCounts, graded_ndcg, mean_over_datasets, retrieval_metrics
from trainer.sparse import SparseVector, to_torch_sparse

st_eval = pytest.importorskip("sentence_transformers.sparse_encoder.evaluation")


def _st_metrics(queries: dict[str, str], docs: list[str], relevant: dict[str, set[str]], rankings: dict[str, list[tuple[str, float]]]) -> dict[str, float]:
    """sentence-transformers' `compute_metrics` on `queries_result_list`, flattened to our key names."""
    evaluator = st_eval.SparseInformationRetrievalEvaluator(
        queries=queries, corpus={d: d for d in docs}, relevant_docs=relevant, write_csv=False
    )
    result_list = [[{"corpus_id": d, "score": s} for d, s in rankings.get(q, [])] for q in evaluator.queries_ids]
    scores = evaluator.compute_metrics(result_list)
    return {name.replace("@k", f"@{k}"): float(v) for name, by_k in scores.items() for k, v in by_k.items()}


def _random_case(seed: int) -> tuple[dict[str, str], list[str], dict[str, set[str]], dict[str, list[tuple[str, float]]]]:
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(300)]
    queries = {f"q{i}": f"query {i}" for i in range(40)}
    relevant = {q: set(rng.sample(docs, rng.randint(1, 15))) for q in list(queries)[:35]}  # 5 queries unjudged
    rankings = {}
    for q in queries:
        depth = rng.choice([0, 3, 10, 57, 100, 120])
        hits = rng.sample(docs, depth)
        # coarse scores -> many ties, which both sides must break by doc id
        rankings[q] = [(d, float(rng.randint(0, 6))) for d in hits]
        rng.shuffle(rankings[q])
    return queries, docs, relevant, rankings


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_retrieval_metrics_equal_sentence_transformers(seed: int) -> None:
    queries, docs, relevant, rankings = _random_case(seed)
    ours = retrieval_metrics(rankings, relevant, [q for q in queries if q in relevant])
    theirs = _st_metrics(queries, docs, relevant, rankings)
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key


def test_graded_ndcg_by_hand() -> None:
    qrels = {"q": {"a": 3, "b": 1, "c": 2, "z": 0}}
    ranking = {"q": [("b", 9.0), ("a", 8.0), ("x", 7.0)]}
    dcg = 1 / np.log2(2) + 3 / np.log2(3)
    ideal = 3 / np.log2(2) + 2 / np.log2(3) + 1 / np.log2(4)
    assert graded_ndcg(ranking, qrels, k=10) == pytest.approx(dcg / ideal, abs=1e-12)
    # with binary grades it equals sentence-transformers' nDCG
    binary = {"q": {"a": 1, "b": 1, "c": 1}}
    assert graded_ndcg(ranking, binary) == pytest.approx(retrieval_metrics(ranking, {"q": {"a", "b", "c"}})["ndcg@10"], abs=1e-12)


def _random_vectors(rng: np.random.Generator, n: int, dim: int, nnz: int) -> list[SparseVector]:
    return [
        SparseVector.from_pairs(
            {int(i): 1.0 + float(rng.random()) for i in rng.choice(dim, size=int(rng.integers(1, nnz)), replace=False)}, dim
        )
        for _ in range(n)
    ]


def test_sparsity_equals_sentence_transformers() -> None:
    from sentence_transformers import SparseEncoder
    from sentence_transformers.util.tensor import compute_count_vector

    rng = np.random.default_rng(0)
    dim = 500
    queries, docs = _random_vectors(rng, 30, dim, 20), _random_vectors(rng, 200, dim, 80)
    ours = SparsityCounts.of(queries, docs, dim).metrics()
    q_t, d_t = to_torch_sparse(queries, dim), to_torch_sparse(docs, dim)
    q_stats, d_stats = SparseEncoder.sparsity(q_t), SparseEncoder.sparsity(d_t)
    flops = float(torch.dot(compute_count_vector(q_t) / len(queries), compute_count_vector(d_t) / len(docs)))
    assert ours["query_active_dims"] == pytest.approx(q_stats["active_dims"], rel=1e-6)
    assert ours["query_sparsity_ratio"] == pytest.approx(q_stats["sparsity_ratio"], rel=1e-6)
    assert ours["corpus_active_dims"] == pytest.approx(d_stats["active_dims"], rel=1e-6)
    assert ours["corpus_sparsity_ratio"] == pytest.approx(d_stats["sparsity_ratio"], rel=1e-6)
    assert ours["avg_flops"] == pytest.approx(flops, rel=1e-6)


def test_mean_over_datasets_is_nanobeir_aggregation() -> None:
    """Retrieval metrics: unweighted mean; sparsity: weighted by counts; flops: from pooled counts."""
    rng = np.random.default_rng(1)
    dim = 300
    a = SparsityCounts.of(_random_vectors(rng, 10, dim, 10), _random_vectors(rng, 100, dim, 50), dim)
    b = SparsityCounts.of(_random_vectors(rng, 40, dim, 30), _random_vectors(rng, 20, dim, 90), dim)
    ma, mb = {"ndcg@10": 0.2, **a.metrics()}, {"ndcg@10": 0.6, **b.metrics()}
    mean = mean_over_datasets([ma, mb], [a, b])
    assert mean["ndcg@10"] == pytest.approx(0.4)
    weighted = (ma["query_active_dims"] * 10 + mb["query_active_dims"] * 40) / 50
    assert mean["query_active_dims"] == pytest.approx(weighted)
    pooled_q = (a.query_terms + b.query_terms) / 50
    pooled_d = (a.document_terms + b.document_terms) / 120
    assert mean["avg_flops"] == pytest.approx(float(np.dot(pooled_q, pooled_d)))

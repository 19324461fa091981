"""`tune`: pruning settings measured on encoded vectors, sizes from real stores, the recommendation rule."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from splade_connectors.errors import ConfigError
from splade_connectors.eval.backends import ExactBackend, store_factory
from splade_connectors.eval.encoding import EncodedDataset
from splade_connectors.eval.runner import evaluate_encoded
from splade_connectors.eval.tune import (
    BASELINE,
    TuneSetting,
    default_settings,
    markdown_table,
    parse_settings,
    recall_at,
    tune,
    write_all,
)
from trainer.pruning import Pruning, prune_all

SETTINGS = "top_k=16,top_k=64,top_k=128,max_ratio=0.2,alpha_mass=0.9,abs_value=0.5"


@pytest.fixture(scope="module")
def report(scifact_eval_data: EncodedDataset):
    return tune(scifact_eval_data, parse_settings(SETTINGS), max_loss=0.005)


def _small(data: EncodedDataset, documents: int = 150) -> EncodedDataset:
    """A few documents and their queries: enough for index sizes, quick to load into a store."""
    subset = data.dataset.subset(data.doc_ids[:documents], name="scifact-small")
    vectors = dict(zip(data.doc_ids, data.doc_vectors))
    queries = dict(zip(data.query_ids, data.query_vectors))
    query_ids = subset.eval_query_ids()
    return EncodedDataset(
        dataset=subset, doc_ids=list(subset.corpus), doc_vectors=[vectors[d] for d in subset.corpus],
        query_ids=query_ids, query_vectors=[queries[q] for q in query_ids], dim=data.dim,
    )


def test_baseline_first_and_changes_relative_to_it(report) -> None:
    base = report.baseline
    assert base.setting == BASELINE and base.ndcg_change == 0.0 and base.recall_change == 0.0
    assert [r.setting for r in report.rows[1:]] == SETTINGS.split(",")
    for row in report.rows[1:]:
        assert row.ndcg_change == pytest.approx((row.ndcg_at_10 - base.ndcg_at_10) / base.ndcg_at_10)
        assert row.recall_change == pytest.approx((row.recall_at_100 - base.recall_at_100) / base.recall_at_100)
        assert row.within_budget == (row.ndcg_change >= -0.005)
        assert row.query_active_dims == base.query_active_dims  # documents only were pruned


def test_rows_are_what_eval_measures_on_the_pruned_vectors(report, scifact_eval_data: EncodedDataset) -> None:
    rule = Pruning(rule="max_ratio", value=0.2)
    pruned = replace(scifact_eval_data, doc_vectors=prune_all(scifact_eval_data.doc_vectors, rule))
    expected = evaluate_encoded([pruned], [ExactBackend()]).results["scifact-1k"]["exact"]
    row = report.row("max_ratio=0.2")
    assert row.ndcg_at_10 == pytest.approx(expected["ndcg@10"], abs=1e-12)
    assert row.corpus_active_dims == pytest.approx(expected["corpus_active_dims"])
    assert row.avg_flops == pytest.approx(expected["avg_flops"])
    assert report.row("top_k=16").corpus_active_dims <= 16 < report.baseline.corpus_active_dims


def test_recommendation_is_the_smallest_setting_within_the_loss(report) -> None:
    within = [r for r in report.rows[1:] if r.within_budget]
    assert within and report.recommended == min(within, key=lambda r: r.corpus_active_dims).setting
    assert not report.row("top_k=16").within_budget  # 16 terms per abstract cost far more than 0.5%
    assert f"**{report.recommended}** (recommended)" in markdown_table(report)


def test_no_recommendation_when_nothing_is_within_the_loss(scifact_eval_data: EncodedDataset) -> None:
    result = tune(scifact_eval_data, parse_settings("top_k=4,top_k=8"), max_loss=0.005)
    assert result.recommended is None
    assert "keep the vectors unpruned" in markdown_table(result)


def test_recall_at_k_by_hand() -> None:
    ranking = {"q1": [("a", 3.0), ("b", 2.0), ("c", 1.0)], "q2": [("x", 1.0)]}
    relevant = {"q1": {"a", "c", "z"}, "q2": {"y"}}
    assert recall_at(ranking, relevant, ["q1", "q2"], 2) == pytest.approx((1 / 3 + 0) / 2)
    assert recall_at(ranking, relevant, ["q1", "q2"], 3) == pytest.approx((2 / 3 + 0) / 2)


def test_default_grid(scifact_eval_data: EncodedDataset) -> None:
    settings = default_settings(scifact_eval_data)
    rules = {s.rule for s in settings}
    assert rules == {"top_k", "max_ratio", "alpha_mass", "abs_value"}
    largest = max(v.nnz for v in scifact_eval_data.doc_vectors)
    assert all(s.value < largest for s in settings if s.rule == "top_k")  # type: ignore[operator]  # top_k settings have a value
    thresholds = [s.value for s in settings if s.rule == "abs_value"]
    assert thresholds == sorted(thresholds) and len(thresholds) == 3 and all(t and t > 0 for t in thresholds)  # type: ignore[type-var]  # abs_value settings have a value
    queries = default_settings(scifact_eval_data, "queries", ["top_k"])
    assert all(s.queries is not None and s.documents is None for s in queries)
    with pytest.raises(ConfigError, match="unknown pruning rules"):
        default_settings(scifact_eval_data, rules=["top_p"])


def test_settings_labels() -> None:
    rule = Pruning(rule="top_k", value=64)
    assert TuneSetting().label == BASELINE
    assert TuneSetting.of(rule).label == TuneSetting.of(rule, "queries").label == TuneSetting.of(rule, "both").label == "top_k=64"
    assert TuneSetting(documents=rule, queries=Pruning(rule="alpha_mass", value=0.9)).label == "docs top_k=64, queries alpha_mass=0.9"
    with pytest.raises(ConfigError, match="RULE=VALUE"):
        parse_settings("top_k=64,nonsense")


def test_index_sizes_from_an_embedded_qdrant_on_disk(scifact_eval_data: EncodedDataset, tmp_path: Path) -> None:
    data = _small(scifact_eval_data)
    stores = {"qdrant": store_factory("qdrant", {"path": str(tmp_path / "qdrant")})}
    result = tune(data, parse_settings("top_k=8,max_ratio=0.3"), stores=stores, max_loss=1.0 - 1e-9)
    sizes = [r.index_bytes["qdrant"] for r in result.rows]
    assert all(isinstance(s, int) and s > 0 for s in sizes)
    assert sizes[1] < sizes[0] and sizes[2] < sizes[0]  # type: ignore[operator]  # pruned documents take less room (sizes checked int above)
    assert result.recommended == "top_k=8"  # with any loss allowed, the smallest index wins
    assert not list((tmp_path / "qdrant" / "collection").glob("*"))  # every collection was dropped
    written = write_all(result, tmp_path / "out")
    saved = json.loads(written["json"].read_text(encoding="utf-8"))
    assert saved["recommended"] == "top_k=8" and saved["rows"][0]["index_bytes"]["qdrant"] == sizes[0]
    assert "| qdrant MB |" in written["markdown"].read_text(encoding="utf-8")
    assert written["chart"].read_bytes().startswith(b"\x89PNG")


@pytest.mark.live
def test_index_sizes_from_opensearch(scifact_eval_data: EncodedDataset, opensearch_store) -> None:
    data = _small(scifact_eval_data)
    stores = {"opensearch": store_factory("opensearch", {
        "url": opensearch_store.url, "username": opensearch_store.username, "password": opensearch_store.password,
        "verify_certs": opensearch_store.verify_certs,
    })}
    result = tune(data, parse_settings("top_k=8"), stores=stores, max_loss=1.0 - 1e-9)
    unpruned, pruned = (r.index_bytes["opensearch"] for r in result.rows)
    assert unpruned and pruned and pruned < unpruned

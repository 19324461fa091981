"""Two-phase queries without a server: how a query splits, the rescore body, the spec syntax, the CLI option."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from splade_connectors.errors import ConfigError
from splade_connectors.opensearch import FeatureCodec, OpenSearchConfig, TwoPhase
from splade_connectors.opensearch.queries import source_spec, sparse_search_body
from trainer.sparse import SparseVector

QUERY = SparseVector.from_pairs({10: 2.0, 20: 0.5, 30: 1.0, 40: 0.1, 50: 0.8})


def _terms(query: dict) -> dict[str, float]:
    return {c["rank_feature"]["field"]: c["rank_feature"]["boost"] for c in query["bool"]["should"]}


def test_split_by_ratio_and_count_covers_every_term_once() -> None:
    head, tail = TwoPhase(ratio=0.4).split(QUERY)  # weight >= 0.4 x 2.0
    assert head.as_dict() == {10: 2.0, 30: 1.0, 50: pytest.approx(0.8)}
    assert tail.as_dict() == {20: 0.5, 40: pytest.approx(0.1)}
    head, tail = TwoPhase(count=2).split(QUERY)
    assert set(head.as_dict()) == {10, 30} and set(tail.as_dict()) == {20, 40, 50}
    for rule in (TwoPhase(ratio=0.0), TwoPhase(count=5), TwoPhase(count=50)):  # phase one keeps everything
        head, tail = rule.split(QUERY)
        assert head == QUERY and tail.nnz == 0
    rng = np.random.default_rng(3)
    for _ in range(50):
        q = SparseVector.from_pairs({int(i): float(w) for i, w in zip(rng.permutation(30000)[:60], rng.random(60) + 1e-3)})
        for rule in (TwoPhase(ratio=float(rng.random())), TwoPhase(count=int(rng.integers(1, 80)))):
            head, tail = rule.split(q)
            assert head.nnz >= 1 and head.nnz + tail.nnz == q.nnz
            assert set(head.as_dict()) | set(tail.as_dict()) == set(q.as_dict())
            assert tail.nnz == 0 or head.values.min() >= tail.values.max()  # the head holds the heaviest terms


def test_two_phase_body_rescores_the_tail_with_total_score() -> None:
    codec = FeatureCodec()
    body = sparse_search_body(QUERY, codec, "splade", top_k=10, two_phase=TwoPhase(ratio=0.4, expansion=5),
                              score_threshold=1.5, source=source_spec([], "splade", False),
                              filters=[{"term": {"metadata.year": 2020}}])
    assert _terms(body["query"]) == {"splade.t10": 2.0, "splade.t30": 1.0, "splade.t50": pytest.approx(0.8)}
    assert body["query"]["bool"]["filter"] == [{"term": {"metadata.year": 2020}}]
    rescore = body["rescore"]
    assert rescore["window_size"] == 50
    assert {k: v for k, v in rescore["query"].items() if k != "rescore_query"} == {
        "query_weight": 1, "rescore_query_weight": 1, "score_mode": "total"}
    assert _terms(rescore["query"]["rescore_query"]) == {"splade.t20": 0.5, "splade.t40": pytest.approx(0.1)}
    assert "min_score" not in body  # it would cut on phase one's partial score; applied to the hits instead
    assert body["_source"] is False and body["docvalue_fields"] == ["doc_id"] and body["track_total_hits"] is False
    exact = sparse_search_body(QUERY, codec, "splade", top_k=10, two_phase=TwoPhase(count=99), score_threshold=1.5)
    assert "rescore" not in exact and exact["min_score"] == 1.5 and len(exact["query"]["bool"]["should"]) == 5


def test_window_and_source_spec() -> None:
    assert TwoPhase(expansion=5).window(10) == 50
    assert TwoPhase(expansion=1).window(10) == 10
    assert TwoPhase(expansion=100, max_window=300).window(10) == 300
    assert TwoPhase(max_window=5).window(10) == 10  # never fewer candidates than hits
    assert source_spec(None, "splade", False) == {"_source": {"excludes": ["splade"]}}
    assert source_spec(None, "splade", True) == {"_source": True}
    assert source_spec(["title"], "splade", True) == {"_source": {"includes": ["doc_id", "title", "splade"]}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", TwoPhase(ratio=0.4)),
        ("ratio=0.25", TwoPhase(ratio=0.25)),
        ("count=8,expansion=10", TwoPhase(count=8, expansion=10)),
        ("0.3", TwoPhase(ratio=0.3)),
        ("12", TwoPhase(count=12)),
        (" ratio = 0.5 , max_window = 500 ", TwoPhase(ratio=0.5, max_window=500)),
    ],
)
def test_spec_syntax(spec: str, expected: TwoPhase) -> None:
    assert TwoPhase.parse(spec) == expected
    assert TwoPhase.parse(expected.describe()) == expected


@pytest.mark.parametrize("spec", ["ratio=2", "count=0", "ratio=0.2,count=3", "depth=3", "ratio=abc", "fast", "expansion=0.5"])
def test_bad_specs_are_one_line_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        TwoPhase.parse(spec)
    assert "\n" not in str(info.value) and "two-phase" in str(info.value)


def test_config_and_cli_option() -> None:
    from splade_connectors.cli.stores import add_store_options, store_config_from_args
    from splade_connectors.registry import store_config

    assert OpenSearchConfig().two_phase is None
    assert OpenSearchConfig(two_phase="count=4").two_phase == TwoPhase(count=4)
    assert OpenSearchConfig(two_phase=True).two_phase == TwoPhase()
    assert OpenSearchConfig(two_phase="off").two_phase is None
    with pytest.raises(ConfigError, match="two-phase"):
        store_config("opensearch", two_phase="ratio=7")
    parser = argparse.ArgumentParser()
    add_store_options(parser)
    base = ["--store", "opensearch", "--opensearch-url", "http://os:9200"]
    assert store_config_from_args(parser.parse_args(base)).two_phase is None  # type: ignore[attr-defined]  # an OpenSearchConfig behind the base type
    assert store_config_from_args(parser.parse_args([*base, "--two-phase"])).two_phase == TwoPhase()  # type: ignore[attr-defined]  # an OpenSearchConfig behind the base type
    config = store_config_from_args(parser.parse_args([*base, "--two-phase", "count=10,expansion=8", "--opensearch-shards", "3"]))
    assert config.two_phase == TwoPhase(count=10, expansion=8) and config.shards == 3  # type: ignore[attr-defined]  # an OpenSearchConfig behind the base type

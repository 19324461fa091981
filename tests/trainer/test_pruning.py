"""The four OpenSearch pruning rules, each against a hand-computed example, and their use at encode time."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.errors import ConfigError
from trainer.pruning import Pruning
from trainer.sparse import SparseVector

# weights by vocabulary id (exact in float32); total 10.0, max 4.0;
# sorted: 4.0 (id 7), 2.5 (id 3), 1.5 (ids 1 and 9), 0.375 (id 12), 0.125 (id 20)
WEIGHTS = {1: 1.5, 3: 2.5, 7: 4.0, 9: 1.5, 12: 0.375, 20: 0.125}
VECTOR = SparseVector.from_pairs(WEIGHTS, dim=30)


def kept(rule: str, value: float) -> dict[int, float]:
    return Pruning(rule=rule, value=value).apply(VECTOR).as_dict()


def test_top_k_keeps_the_k_largest_and_breaks_ties_by_lower_id() -> None:
    assert kept("top_k", 2) == {3: 2.5, 7: 4.0}
    assert kept("top_k", 3) == {1: 1.5, 3: 2.5, 7: 4.0}  # 1.5 twice: id 1 before id 9
    assert kept("top_k", 100) == WEIGHTS


def test_max_ratio_keeps_weights_at_least_ratio_times_the_max() -> None:
    # 4.0 x 0.375 = 1.5: inclusive, both 1.5s stay; 0.375 / 4 = 0.09375 < 0.375
    assert kept("max_ratio", 0.375) == {1: 1.5, 3: 2.5, 7: 4.0, 9: 1.5}
    assert kept("max_ratio", 0.5) == {3: 2.5, 7: 4.0}  # 2.5 / 4 = 0.625 >= 0.5, 1.5 / 4 = 0.375 < 0.5
    assert kept("max_ratio", 0.03) == WEIGHTS  # 0.125 / 4 = 0.03125


def test_abs_value_keeps_weights_at_least_the_threshold() -> None:
    assert kept("abs_value", 1.5) == {1: 1.5, 3: 2.5, 7: 4.0, 9: 1.5}
    assert kept("abs_value", 1.6) == {3: 2.5, 7: 4.0}
    assert kept("abs_value", 5.0) == {}


def test_alpha_mass_keeps_the_largest_until_their_sum_reaches_alpha_of_the_total() -> None:
    # running sums / 10: 0.4, 0.65, 0.8, 0.95, 0.9875, 1.0; the weight that reaches alpha is kept
    assert kept("alpha_mass", 0.4) == {7: 4.0}  # reached exactly by the first weight
    assert kept("alpha_mass", 0.5) == {3: 2.5, 7: 4.0}
    assert kept("alpha_mass", 0.7) == {1: 1.5, 3: 2.5, 7: 4.0}  # the 1.5 of id 1 comes first (tie order)
    assert kept("alpha_mass", 0.96) == {1: 1.5, 3: 2.5, 7: 4.0, 9: 1.5, 12: 0.375}
    assert kept("alpha_mass", 0.99) == WEIGHTS


def test_empty_and_untouched_vectors_pass_through() -> None:
    empty = SparseVector.empty(30)
    assert Pruning(rule="alpha_mass", value=0.5).apply(empty) is empty
    assert Pruning(rule="top_k", value=10).apply(VECTOR) is VECTOR


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("top_k=0", "integer >= 1"), ("top_k=2.5", "integer >= 1"), ("max_ratio=1", "in (0, 1)"),
        ("alpha_mass=0", "in (0, 1)"), ("abs_value=0", "> 0"), ("abs_value=x", "not a number"),
        ("keep=3", "RULE=VALUE"), ("max_ratio", "RULE=VALUE"),
    ],
)
def test_values_are_validated_as_opensearch_does(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Pruning.parse(text)


def test_parse_and_label_round_trip() -> None:
    assert Pruning.parse("top-k=64") == Pruning(rule="top_k", value=64)
    assert str(Pruning.parse(" max_ratio = 0.1 ".replace(" ", ""))) == "max_ratio=0.1"
    assert str(Pruning(rule="top_k", value=64)) == "top_k=64"


def test_encoder_prunes_documents_and_queries_separately(encoder) -> None:
    from trainer.encoder import EncodeOptions, SpladeEncoder

    text = ["Photosynthesis converts light, water and carbon dioxide into chemical energy stored in sugar."]
    full = encoder.encode_documents(text)[0]
    pruned = encoder.encode_documents(text, prune="max_ratio=0.3")[0]
    rule = Pruning(rule="max_ratio", value=0.3)
    assert pruned == rule.apply(full) and 0 < pruned.nnz < full.nnz
    assert np.all(pruned.values >= 0.3 * full.values.max())
    both = SpladeEncoder(
        encoder.model, device="cpu", options=EncodeOptions(prune=Pruning(rule="top_k", value=5)),
        query_options=EncodeOptions(prune=Pruning(rule="alpha_mass", value=0.5)),
    )
    assert both.encode_documents(text)[0] == full.top_k(5)
    assert both.encode_queries(text)[0] == Pruning(rule="alpha_mass", value=0.5).apply(encoder.encode_queries(text)[0])
    # min_weight, then top_k, then the rule
    combined = encoder.encode_documents(text, min_weight=0.2, top_k=20, prune="abs_value=0.5")[0]
    assert combined == Pruning(rule="abs_value", value=0.5).apply(full.prune(0.2).top_k(20))

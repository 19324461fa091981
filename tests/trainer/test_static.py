"""The static query side: IDF weights, the lookup, its differentiable form, idf.json in and out."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from trainer.static import SparseStaticEmbedding, StaticWeightsError, idf_weights


@pytest.fixture(scope="module")
def tokenizer(trained_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(trained_model_dir))


def test_idf_by_hand(tokenizer) -> None:
    corpus = ["cells divide", "cells cells cells grow", "plants grow"]
    idf = idf_weights(corpus, tokenizer)
    ids = tokenizer.convert_tokens_to_ids
    # N = 3; df(cells) = 2 (repeats count once), df(divide) = 1, df(grow) = 2; BM25 idf = log(1 + (N - df + .5) / (df + .5))
    assert float(idf[ids("cells")]) == pytest.approx(math.log(1 + 1.5 / 2.5), rel=1e-6)
    assert float(idf[ids("divide")]) == pytest.approx(math.log(1 + 2.5 / 1.5), rel=1e-6)
    assert float(idf[ids("grow")]) == float(idf[ids("cells")])
    assert float(idf[ids("vitamin")]) == 0.0  # never seen: no weight
    assert float(idf[tokenizer.cls_token_id]) == 0.0  # no special tokens on the query side


def test_lookup_equals_the_differentiable_form(tokenizer) -> None:
    weights = torch.rand(len(tokenizer.get_vocab()), generator=torch.Generator().manual_seed(0))
    weights[tokenizer.convert_tokens_to_ids("the")] = 0.0
    static = SparseStaticEmbedding(tokenizer, weights)
    texts = ["the cells of the plant", "plant plant"]
    batch = tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt")
    dense = static(batch["input_ids"], batch["attention_mask"]).detach()
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    for vector, row in zip(static.vectors_from_ids(ids), dense):
        assert vector.as_dict() == pytest.approx({int(i): float(row[i]) for i in torch.nonzero(row).flatten()})
    assert static.vectors_from_ids(ids)[1].nnz == 1  # a repeated token counts once
    assert tokenizer.convert_tokens_to_ids("the") not in static.vectors_from_ids(ids)[0].as_dict()  # weight 0: no entry
    assert dense[0, tokenizer.pad_token_id] == 0  # padding contributes nothing


def test_idf_json_round_trip_and_errors(tokenizer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "idf.json"
    path.write_text(json.dumps({"cells": 2.5, "plant": 1.25, "not-a-token-xyz": 3.0}), encoding="utf-8")
    with caplog.at_level("WARNING"):
        static = SparseStaticEmbedding.from_idf_json(path, tokenizer)
    assert "1 of 3 tokens are not in the tokenizer's vocabulary" in caplog.text
    assert static.frozen and not static.weight.requires_grad
    assert json.loads(static.to_idf_json(tmp_path / "out.json").read_text(encoding="utf-8")) == {"cells": 2.5, "plant": 1.25}
    path.write_text(json.dumps({"cells": "high"}), encoding="utf-8")
    with pytest.raises(StaticWeightsError, match="weight of token 'cells' is not a finite number"):
        SparseStaticEmbedding.from_idf_json(path, tokenizer)
    with pytest.raises(StaticWeightsError, match="entries, the tokenizer has"):
        SparseStaticEmbedding(tokenizer, torch.ones(10))


def test_module_folder_round_trip(tokenizer, tmp_path: Path) -> None:
    weights = torch.rand(len(tokenizer.get_vocab()), generator=torch.Generator().manual_seed(1))
    saved = SparseStaticEmbedding(tokenizer, weights, frozen=False).save(tmp_path / "query_0_SparseStaticEmbedding")
    assert json.loads((saved / "config.json").read_text()) == {"frozen": False}
    loaded = SparseStaticEmbedding.load(saved)
    assert torch.equal(loaded.weight.detach(), weights) and not loaded.frozen and loaded.weight.requires_grad
    (saved / "model.safetensors").unlink()
    with pytest.raises(StaticWeightsError, match="no model.safetensors"):
        SparseStaticEmbedding.load(saved)

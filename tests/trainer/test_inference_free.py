"""Inference-free SPLADE equals sentence-transformers' Router SparseEncoder, in both directions.

The model is assembled here from parts: document route = the shipped MLM + SpladePooling, query
route = a `SparseStaticEmbedding` whose weights are IDF computed from the SciFact corpus.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from tests.inference_free import build_st_router, scifact_idf as scifact_idf_weights
from trainer.checkpoint import CheckpointError
from trainer.encoder import SpladeEncoder
from trainer.model import SpladeModel
from trainer.sparse import SparseVector
from trainer.static import SparseStaticEmbedding

from .test_parity import PARITY_TEXTS

if TYPE_CHECKING:
    from sentence_transformers import SparseEncoder

st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is the test-only reference")

QUERIES = [
    "0-dimensional biomaterials show inductive properties.",
    "who is cornelius in the book of acts",
    "vitamin D vitamin d VITAMIN D and bone density",  # repeated tokens count once
    "Ünïcödé naïve café 北京",
    "",  # an empty query is an empty vector on both sides
    " ".join(["long query"] * 400),  # longer than the query side's 512 tokens: truncated there
]


@pytest.fixture(scope="module")
def scifact_idf(scifact_dir: Path, splade_model: SpladeModel) -> torch.Tensor:
    weights = scifact_idf_weights(scifact_dir, splade_model.tokenizer)
    assert int((weights > 0).sum()) > 10_000  # most of the vocabulary occurs in 5,183 abstracts
    return weights


@pytest.fixture(scope="module")
def st_router_dir(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path, scifact_idf: torch.Tensor) -> Path:
    """sentence-transformers' own Router model, saved by sentence-transformers."""
    return build_st_router(trained_model_dir, scifact_idf, tmp_path_factory.mktemp("st-router"))


@pytest.fixture(scope="module")
def st_router(st_router_dir: Path) -> SparseEncoder:
    return st.SparseEncoder(str(st_router_dir), device="cpu")


@pytest.fixture(scope="module")
def ours(st_router_dir: Path) -> SpladeEncoder:
    return SpladeEncoder(SpladeModel.from_pretrained(st_router_dir), device="cpu")


def assert_identical(vectors: list[SparseVector], reference: torch.Tensor, atol: float = 1e-5) -> None:
    dense = reference.to_dense().float() if reference.is_sparse else reference.float()
    assert len(vectors) == dense.shape[0]
    for i, (vector, row) in enumerate(zip(vectors, dense)):
        expected = torch.nonzero(row > 0).flatten().numpy()
        assert vector.indices.tolist() == expected.tolist(), f"text #{i}: active terms differ"
        np.testing.assert_allclose(vector.values, row[expected].numpy(), atol=atol, rtol=0, err_msg=f"text #{i}")


def test_router_checkpoint_is_inference_free(ours: SpladeEncoder) -> None:
    assert ours.model.is_inference_free and ours.model.query_static is not None
    assert ours.model.query_static.frozen and ours.model.pooling.pooling_strategy == "max"


def test_query_vectors_identical(ours: SpladeEncoder, st_router: SparseEncoder, scifact_slice) -> None:
    texts = QUERIES + list(scifact_slice.queries.values())[:50]
    assert_identical(ours.encode_queries(texts), st_router.encode_query(texts, convert_to_tensor=True))
    assert ours.stats.truncated == [QUERIES.index(QUERIES[-1])]
    weights = ours.model.query_static.weight
    vitamin = ours.encode_queries([QUERIES[2]])[0].as_dict()
    vitamin_id = ours.model.tokenizer.convert_tokens_to_ids("vitamin")
    assert vitamin[vitamin_id] == pytest.approx(float(weights[vitamin_id]))  # presence x weight, not a count


def test_document_vectors_identical(ours: SpladeEncoder, st_router: SparseEncoder, scifact_slice) -> None:
    texts = PARITY_TEXTS + [d["text"] for d in scifact_slice.corpus[:30]]
    assert_identical(ours.encode_documents(texts), st_router.encode_document(texts, convert_to_tensor=True, batch_size=8))


def test_queries_need_no_model_forward(ours: SpladeEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the MLM ran for a query")

    monkeypatch.setattr(ours.model.mlm, "forward", forbidden)
    vectors = ours.encode_queries(["who is cornelius in the book of acts"])
    assert vectors[0].nnz > 0
    with pytest.raises(AssertionError, match="the MLM ran"):
        ours.encode_documents(["documents still use the MLM"])


def test_save_and_load_both_ways(ours: SpladeEncoder, st_router: SparseEncoder, tmp_path: Path) -> None:
    texts = PARITY_TEXTS[:4] + QUERIES[:3]
    saved = ours.model.save(tmp_path / "ours")
    assert json.loads((saved / "modules.json").read_text())[0]["type"].endswith("Router")
    st_reloaded = st.SparseEncoder(str(saved), device="cpu")
    assert_identical(ours.encode_queries(texts), st_reloaded.encode_query(texts, convert_to_tensor=True))
    assert_identical(ours.encode_documents(texts), st_reloaded.encode_document(texts, convert_to_tensor=True))
    ours_reloaded = SpladeEncoder(SpladeModel.from_pretrained(saved), device="cpu")
    assert_identical(ours_reloaded.encode_queries(texts), st_router.encode_query(texts, convert_to_tensor=True))
    assert_identical(ours_reloaded.encode_documents(texts), st_router.encode_document(texts, convert_to_tensor=True))
    # and sentence-transformers' re-save of our save still loads here
    st_reloaded.save(str(tmp_path / "st_again"))
    again = SpladeEncoder(SpladeModel.from_pretrained(tmp_path / "st_again"), device="cpu")
    assert_identical(again.encode_queries(texts), st_router.encode_query(texts, convert_to_tensor=True))


def test_opensearch_doc_only_layout(
    trained_model_dir: Path, scifact_idf: torch.Tensor, st_router: SparseEncoder, tmp_path: Path
) -> None:
    """An MLM directory with an idf.json (OpenSearch's doc-only models) loads inference-free, same vectors."""
    directory = tmp_path / "doc-only"
    shutil.copytree(trained_model_dir, directory)
    model = SpladeModel.from_pretrained(trained_model_dir)
    SparseStaticEmbedding(model.tokenizer, scifact_idf).to_idf_json(directory / "idf.json")
    table = json.loads((directory / "idf.json").read_text(encoding="utf-8"))
    assert table["vitamin"] == pytest.approx(float(scifact_idf[model.tokenizer.convert_tokens_to_ids("vitamin")]))
    loaded = SpladeEncoder(SpladeModel.from_pretrained(directory), device="cpu")
    assert loaded.model.is_inference_free
    assert_identical(loaded.encode_queries(QUERIES), st_router.encode_query(QUERIES, convert_to_tensor=True))
    # sentence-transformers' own idf.json reader gives the same query side
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding as StStatic

    st_static = StStatic.from_json(str(directory / "idf.json"), tokenizer=model.tokenizer)
    torch.testing.assert_close(loaded.model.query_static.weight.detach(), st_static.weight.detach())
    # any MLM + query_weights=idf.json is the same model
    attached = SpladeEncoder(SpladeModel.from_pretrained(trained_model_dir, query_weights=directory / "idf.json"), device="cpu")
    assert [v.as_dict() for v in attached.encode_queries(QUERIES)] == [v.as_dict() for v in loaded.encode_queries(QUERIES)]


def test_pruning_and_empty_weights_on_the_query_side(ours: SpladeEncoder) -> None:
    full = ours.encode_queries([QUERIES[1]])[0]
    top2 = ours.encode_queries([QUERIES[1]], prune="top_k=2")[0]
    assert top2 == full.top_k(2)
    # a token whose weight is 0 (never seen in the corpus) gives no entry
    unseen = int(torch.nonzero(ours.model.query_static.weight == 0)[-1])
    token = ours.model.tokenizer.convert_ids_to_tokens(unseen)
    assert unseen not in ours.encode_queries([f"cornelius {token}"])[0].as_dict()


def test_router_with_a_model_on_the_query_route_is_refused(st_router_dir: Path, tmp_path: Path) -> None:
    directory = tmp_path / "two-towers"
    shutil.copytree(st_router_dir, directory)
    config = json.loads((directory / "router_config.json").read_text())
    config["structure"]["query"] = list(config["structure"]["document"])
    (directory / "router_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="only a SparseStaticEmbedding query side"):
        SpladeModel.from_pretrained(directory)

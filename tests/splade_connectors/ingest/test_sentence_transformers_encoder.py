"""A sentence-transformers SparseEncoder passed as the encoder: the same stored vectors and hits as SpladeEncoder
on the same checkpoint (real Qdrant server), identity-bound checkpoints and skip-unchanged, options that mean
the same on both encoders."""

from __future__ import annotations

import asyncio
import copy
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from splade_connectors.encoding import SparseEncoder as SparseEncoderProtocol, as_encoder
from splade_connectors.errors import ConfigError, EncodingMismatchError, IngestError, ResumeError
from splade_connectors.ingest import IngestConfig, ingest, ingest_file, ingest_file_ray
from splade_connectors.ingest.ray_engine import EncoderSpec, RayOptions
from splade_connectors.registry import open_store
from splade_connectors.search import asearch, search
from tests.splade_connectors.ingest.conftest import InterruptedStore, store_config_for, write_jsonl
from trainer.encoder import EncodeOptions, SpladeEncoder
from trainer.model import SpladeModel
from trainer.st_encoder import SentenceTransformersEncoder

st = pytest.importorskip("sentence_transformers")

pytestmark = pytest.mark.filterwarnings("ignore:Qdrant client version:UserWarning")

BATCH = 20
QUERIES = ["vitamin D and bone density", "cancer cells and tumour growth", "who is cornelius in the book of acts"]


@pytest.fixture(scope="module")
def st_dir(splade_model: SpladeModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model saved as a sentence-transformers SparseEncoder checkpoint (modules.json, SpladePooling)."""
    return splade_model.save(tmp_path_factory.mktemp("st") / "shipped-st")


@pytest.fixture(scope="module")
def st_model(st_dir: Path) -> Any:
    return st.SparseEncoder(str(st_dir), device="cpu")


@pytest.fixture(scope="module")
def docs(short_docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return short_docs[:80]


def _dense(vectors: dict[str, Any], dim: int) -> dict[str, np.ndarray]:
    return {doc_id: v.to_dense(dim) for doc_id, v in vectors.items()}


# ---- on the real Qdrant server ---------------------------------------------------------------------------
@pytest.mark.live
@pytest.mark.parametrize("store_kind", ["qdrant"])
def test_same_stored_vectors_and_hits_as_splade_encoder(
    make_store: Any, st_model: Any, encoder: SpladeEncoder, docs: list[dict[str, Any]]
) -> None:
    ours, theirs = make_store("splade"), make_store("st")
    assert ingest(docs, encoder, ours, IngestConfig(batch_size=BATCH)).stored == len(docs)
    report = ingest(docs, st_model, theirs, IngestConfig(batch_size=BATCH))  # the sentence-transformers object itself
    assert report.stored == len(docs) and not report.invalid

    ids = [d["_id"] for d in docs]
    dim = encoder.model.vocab_size
    expected, found = _dense(ours.fetch_vectors(ids), dim), _dense(theirs.fetch_vectors(ids), dim)
    assert set(found) == set(ids)
    for doc_id in ids:
        assert np.array_equal(np.flatnonzero(found[doc_id]), np.flatnonzero(expected[doc_id])), doc_id
        np.testing.assert_allclose(found[doc_id], expected[doc_id], rtol=1e-4, atol=1e-5)

    reference = search(ours, encoder, QUERIES, top_k=10)
    with pytest.raises(EncodingMismatchError):  # the identities differ (module configs), so the record refuses by default
        search(ours, st_model, QUERIES, top_k=10)
    for results in (search(theirs, st_model, QUERIES, top_k=10, explain=True), search(ours, st_model, QUERIES, top_k=10, allow_model_mismatch=True)):  # another identity, same vectors
        for hits, ref in zip(results, reference):
            assert [h.id for h in hits] == [h.id for h in ref]
            np.testing.assert_allclose([h.score for h in hits], [h.score for h in ref], rtol=1e-4)
    for hits, ref in zip(asyncio.run(asearch(theirs, st_model, QUERIES, top_k=10)), reference):  # the async front door too
        assert [h.id for h in hits] == [h.id for h in ref]
    explained = search(theirs, st_model, QUERIES, top_k=1, explain=True)
    assert explained[0][0].terms  # decoded with the sentence-transformers model's vocabulary


@pytest.mark.live
@pytest.mark.parametrize("store_kind", ["qdrant"])
def test_checkpoint_and_skip_unchanged_with_a_sentence_transformers_encoder(
    make_store: Any, st_model: Any, st_dir: Path, encoder: SpladeEncoder, docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", docs)
    store = make_store("resume")
    checkpoint = tmp_path / "ingest.ckpt"
    config = IngestConfig(batch_size=BATCH, checkpoint=checkpoint, skip_unchanged=True)
    with pytest.raises(IngestError, match="injected crash"):
        ingest_file(corpus, st_model, InterruptedStore(store, after=2), config)
    assert checkpoint.exists()

    other = copy.deepcopy(st_model)  # another SparseEncoder: same modules, different weights
    with torch.no_grad():
        other.transformers_model.get_output_embeddings().bias.add_(0.01)
    with pytest.raises(ResumeError, match=r"another model or encoding options \(differs in: model\)"):
        ingest_file(corpus, other, store, config)
    with pytest.raises(ResumeError, match=r"differs in: model"):
        ingest_file(corpus, encoder, store, config)  # SpladeEncoder on the same checkpoint: not the same vectors bit for bit
    assert checkpoint.exists()

    reloaded = st.SparseEncoder(str(st_dir), device="cpu")  # the same checkpoint, loaded again: resumes
    report = ingest_file(corpus, reloaded, store, config)
    assert report.skipped_by_resume == 2 * BATCH and store.count() == len(docs) and not checkpoint.exists()
    again = ingest_file(corpus, st_model, store, IngestConfig(batch_size=BATCH, skip_unchanged=True))
    assert again.unchanged == len(docs) and again.accepted == 0
    with pytest.raises(EncodingMismatchError):  # another model into the same collection: refused, nothing mixed
        ingest_file(corpus, other, store, IngestConfig(batch_size=BATCH, skip_unchanged=True))
    changed = ingest_file(corpus, other, store, IngestConfig(batch_size=BATCH, skip_unchanged=True, reencode=True))
    assert changed.unchanged == 0 and changed.accepted == len(docs) and store.count() == len(docs)


@pytest.mark.live
def test_ray_engine_encodes_with_sentence_transformers(
    qdrant_url: str, vocabulary: list[str], ray_local: Any, st_model: Any, st_dir: Path, encoder: SpladeEncoder,
    docs: list[dict[str, Any]], tmp_path: Path,
) -> None:
    """Ray encoder actors load the directory with sentence-transformers: the hashes they store are the ones a
    single-process run with the same SparseEncoder object computes, and the vectors are SpladeEncoder's."""
    config = store_config_for("qdrant", qdrant_url, f"ingest-st-ray-{uuid.uuid4().hex[:8]}")
    corpus = write_jsonl(tmp_path / "corpus.jsonl", docs[:40])
    spec = EncoderSpec(model=str(st_dir), backend="sentence-transformers")
    with open_store(config, vocabulary=vocabulary) as store:
        try:
            report = ingest_file_ray(corpus, spec, config, IngestConfig(batch_size=BATCH), RayOptions(encoders=1))
            assert report.stored == 40
            again = ingest_file(corpus, st_model, store, IngestConfig(batch_size=BATCH, skip_unchanged=True))
            assert again.unchanged == 40 and again.accepted == 0
            ids = [d["_id"] for d in docs[:40]]
            stored = store.fetch_vectors(ids)
            for doc_id, expected in zip(ids, encoder.encode_documents([d["text"] for d in docs[:40]])):
                np.testing.assert_allclose(stored[doc_id].to_dense(expected.dim), expected.to_dense(), rtol=1e-4, atol=1e-5)
        finally:
            store.drop()


# ---- without a store ---------------------------------------------------------------------------------------
def test_wrapped_model_fulfils_the_whole_contract(st_model: Any, encoder: SpladeEncoder, st_dir: Path) -> None:
    wrapped = as_encoder(st_model)
    assert isinstance(wrapped, SentenceTransformersEncoder) and isinstance(wrapped, SparseEncoderProtocol)
    assert as_encoder(encoder) is encoder
    assert wrapped.model.vocab_size == encoder.model.vocab_size and wrapped.model.id_to_token() == encoder.model.id_to_token()
    identity = wrapped.identity()
    assert identity.model.startswith("sentence-transformers/BertForMaskedLM:") and identity.max_length == encoder.identity().max_length
    reloaded = SentenceTransformersEncoder.from_pretrained(st_dir, device="cpu")
    assert reloaded.identity() == identity  # the same checkpoint, loaded again: the same identity
    assert SentenceTransformersEncoder(st_model, options=EncodeOptions(top_k=64)).identity().differences(identity) == ["top_k"]
    spec = EncoderSpec(model=str(st_dir), backend="sentence-transformers")  # what each Ray encoder actor loads
    assert spec.load(device="cpu", dtype="fp32").identity() == identity


def test_module_configuration_enters_the_identity(st_model: Any) -> None:
    identity = as_encoder(st_model).identity()
    other = copy.deepcopy(st_model)
    other[1].activation_function = "log1p_relu"  # same weights, another SpladePooling
    assert SentenceTransformersEncoder(other).identity().differences(identity) == ["model"]


@pytest.mark.parametrize(
    "overrides",
    [{}, {"top_k": 8}, {"prune": "max_ratio=0.3"}, {"prune": "alpha_mass=0.5"}, {"min_weight": 0.5}, {"max_length": 16}],
)
def test_options_mean_the_same_as_splade_encoder(st_model: Any, encoder: SpladeEncoder, overrides: dict[str, Any]) -> None:
    texts = ["Cornelius was a centurion in the book of acts", "u.s. tariffs on steel imports " * 20, "", "   \u200b"]
    wrapped = as_encoder(st_model)
    for role in ("document", "query"):
        found = wrapped.encode(texts, role=role, **overrides)
        expected = encoder.encode(texts, role=role, **overrides)
        for f, e in zip(found, expected):
            assert np.array_equal(f.indices, e.indices)
            np.testing.assert_allclose(f.values, e.values, rtol=1e-4, atol=1e-5)
    assert wrapped.stats.empty == [2, 3] and wrapped.stats.texts == 4
    if "max_length" in overrides:
        assert wrapped.stats.truncated == [1]
    assert st_model.max_seq_length == encoder.model.max_seq_length  # the per-call window is restored


def test_refusals_are_one_line_errors(st_model: Any) -> None:
    wrapped = as_encoder(st_model)
    from trainer.encoder import EncodingInputError

    with pytest.raises(EncodingInputError, match="input #1: text is None"):
        wrapped.encode_documents(["fine", None])
    with pytest.raises(ConfigError, match="chunk_tokens"):
        wrapped.encode_documents(["fine"], chunk_tokens=64)
    with pytest.raises(ConfigError, match="unknown encoder option 'topk'"):
        wrapped.encode_documents(["fine"], topk=3)
    with pytest.raises(ConfigError, match="fp32, bf16 or fp16"):
        SentenceTransformersEncoder.from_pretrained("unused", dtype="int8")

"""`SpladeEncoder.identity()`: what the document vectors are made from. It changes with the weights, the
model's settings, the precision and every document option, and with nothing else (checkpoints and
`--skip-unchanged` trust it to tell "same vectors")."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.encoder import EncodeOptions, SpladeEncoder
from trainer.identity import EncoderIdentity
from trainer.model import SpladeModel


@pytest.fixture(scope="module")
def own_model(trained_model_dir: Path) -> SpladeModel:
    """A copy of the trained model that this module may move to other dtypes (the session's stays fp32)."""
    return SpladeModel.from_pretrained(trained_model_dir)


def fresh(trained_model_dir: Path, **kwargs: object) -> SpladeEncoder:
    return SpladeEncoder(SpladeModel.from_pretrained(trained_model_dir), device="cpu", **kwargs)


def test_same_checkpoint_and_options_give_one_hashable_serialisable_identity(encoder: SpladeEncoder, trained_model_dir: Path) -> None:
    identity = encoder.identity()
    again = fresh(trained_model_dir)  # another load of the same files
    assert isinstance(identity, EncoderIdentity)
    assert again.identity() == identity and hash(again.identity()) == hash(identity) and again.identity().key() == identity.key()
    assert identity.model.startswith("BertForMaskedLM:") and identity.dtype == "fp32" and identity.max_length == 512
    assert EncoderIdentity.model_validate_json(identity.model_dump_json()) == identity
    assert {identity: 1}[again.identity()] == 1
    encoder.encode_documents(["vitamin D and bone density"])  # encoding does not change what the encoder is
    assert encoder.identity() == identity


def test_query_options_and_device_spelling_do_not_change_it(trained_model_dir: Path, encoder: SpladeEncoder) -> None:
    other = fresh(trained_model_dir, query_options=EncodeOptions(top_k=5, max_length=32), dtype="float32")
    assert other.identity() == encoder.identity()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (EncodeOptions(max_length=128), "max_length"),
        (EncodeOptions(top_k=64), "top_k"),
        (EncodeOptions(min_weight=0.05), "min_weight"),
        (EncodeOptions(prune="abs_value=0.3"), "prune"),
        (EncodeOptions(chunk_tokens=128), "chunk_tokens"),
    ],
)
def test_each_document_option_changes_it(encoder: SpladeEncoder, options: EncodeOptions, field: str) -> None:
    changed = SpladeEncoder(encoder.model, device="cpu", options=options).identity()
    assert changed != encoder.identity() and changed.differences(encoder.identity()) == [field]


def test_chunk_stride_and_batch_size(encoder: SpladeEncoder) -> None:
    windows = SpladeEncoder(encoder.model, device="cpu", options=EncodeOptions(chunk_tokens=128)).identity()
    strided = SpladeEncoder(encoder.model, device="cpu", options=EncodeOptions(chunk_tokens=128, chunk_stride=64)).identity()
    assert strided.differences(windows) == ["chunk_stride"]
    batched = SpladeEncoder(encoder.model, device="cpu", options=EncodeOptions(batch_size=7, window=99)).identity()
    assert batched == encoder.identity()  # how texts are batched does not change a vector's identity


def test_a_max_length_beyond_the_model_is_the_model_limit(encoder: SpladeEncoder) -> None:
    assert SpladeEncoder(encoder.model, device="cpu", options=EncodeOptions(max_length=4096)).identity() == encoder.identity()


def test_precision_changes_the_dtype_not_the_model(own_model: SpladeModel, encoder: SpladeEncoder) -> None:
    fp32 = encoder.identity()
    int8 = SpladeEncoder(own_model, device="cpu", dtype="int8").identity()
    bf16 = SpladeEncoder(own_model, device="cpu", dtype="bf16").identity()
    assert (int8.dtype, bf16.dtype) == ("int8", "bf16")
    assert int8.differences(fp32) == ["dtype"] and bf16.differences(fp32) == ["dtype"]  # same weights, other precision


def test_int8_full_keeps_the_fingerprint_of_the_weights_it_quantised(trained_model_dir: Path, encoder: SpladeEncoder) -> None:
    """int8 layers hold packed weights, not parameters: the fingerprint is taken before they replace the Linears,
    so it still covers the body's weights (a fine-tune that changed only them gives another identity)."""
    full = SpladeEncoder(SpladeModel.from_pretrained(trained_model_dir), device="cpu", dtype="int8-full")
    assert full.identity().dtype == "int8-full" and full.identity().differences(encoder.identity()) == ["dtype"]
    tuned = SpladeModel.from_pretrained(trained_model_dir)
    with torch.no_grad():
        next(m for m in tuned.mlm.modules() if isinstance(m, torch.nn.Linear)).weight.mul_(1.01)
    assert "model" in SpladeEncoder(tuned, device="cpu", dtype="int8-full").identity().differences(full.identity())


def test_other_weights_or_model_settings_change_the_model_fingerprint(trained_model_dir: Path, encoder: SpladeEncoder) -> None:
    base = encoder.identity()
    tuned = fresh(trained_model_dir)
    with torch.no_grad():
        next(iter(tuned.model.parameters())).view(-1)[0] += 1.0  # one sampled weight moved
    assert tuned.identity().differences(base) == ["model"]
    prompted = fresh(trained_model_dir)
    prompted.model.prompts = {"document": "passage: "}
    assert prompted.identity().differences(base) == ["model"]
    lowercase = fresh(trained_model_dir)
    lowercase.model.do_lower_case = not lowercase.model.do_lower_case
    assert lowercase.identity().differences(base) == ["model"]


def test_another_checkpoint_has_another_identity(encoder: SpladeEncoder, base_model_dir: Path) -> None:
    other = SpladeEncoder(SpladeModel.from_pretrained(base_model_dir), device="cpu").identity()
    assert "model" in other.differences(encoder.identity())


def test_an_inference_free_query_side_does_not_change_the_document_identity(trained_model_dir: Path, encoder: SpladeEncoder) -> None:
    """Query token weights never change a document vector: the same MLM with any query side has one identity
    (a collection it wrote can be searched with or without them)."""
    from trainer.static import SparseStaticEmbedding

    inference_free = fresh(trained_model_dir)
    weights = torch.rand(inference_free.model.vocab_size) + 0.5
    inference_free.model.set_query_static(SparseStaticEmbedding(inference_free.model.tokenizer, weights))
    assert inference_free.model.is_inference_free
    assert inference_free.identity() == encoder.identity()

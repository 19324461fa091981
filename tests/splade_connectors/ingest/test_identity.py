"""The encoding identity comes from the encoder's own `identity()`, never from looking inside it. An encoder
without one still ingests and searches, but whatever compares with earlier runs (skip-unchanged, a
checkpoint, delete-missing) refuses it with one line, and its points carry no content hash: swapping
the model behind it can never leave documents "unchanged" with the old vectors."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from splade_connectors.cli import main
from splade_connectors.encoding import DocumentEncoder, IdentifiedEncoder, QueryEncoder, SparseEncoder
from splade_connectors.errors import ConfigError, IngestError, ResumeError
from splade_connectors.ingest import IngestConfig, encoding_identity, ingest, ingest_file
from splade_connectors.ingest.checkpoint import CheckpointFile
from splade_connectors.qdrant import QdrantConfig, QdrantStore
from splade_connectors.records import CONTENT_HASH_FIELD
from splade_connectors.search import search
from tests.splade_connectors.ingest.conftest import write_jsonl
from trainer.encoder import EncodeStats, SpladeEncoder
from trainer.sparse import SparseVector

pytestmark = pytest.mark.filterwarnings("ignore:Qdrant client version:UserWarning")


class NoIdentityEncoder:
    """Encodes with the real model but cannot say what its vectors are made from (a custom wrapper)."""

    def __init__(self, inner: SpladeEncoder) -> None:
        self.inner, self.model, self.stats = inner, inner.model, EncodeStats()

    def encode_documents(self, texts: Iterable[str], **overrides: object) -> list[SparseVector]:
        vectors = self.inner.encode_documents(texts, **overrides)
        self.stats = self.inner.stats
        return vectors

    def encode_queries(self, texts: Iterable[str], **overrides: object) -> list[SparseVector]:
        return self.inner.encode_queries(texts, **overrides)


@pytest.fixture
def store(tmp_path: Path, vocabulary: list[str]) -> Iterator[QdrantStore]:
    with QdrantStore(QdrantConfig(path=str(tmp_path / "qdrant"), collection="identity")) as opened:
        yield opened


@pytest.fixture
def docs(short_docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return short_docs[:30]


def one_line_refusal(info: pytest.ExceptionInfo[ConfigError], feature: str) -> str:
    text = str(info.value)
    assert "\n" not in text and feature in text and "NoIdentityEncoder" in text and "no identity()" in text
    return text


def test_spladeencoder_fulfils_the_whole_contract_and_a_wrapper_the_parts_it_has(encoder: SpladeEncoder) -> None:
    assert isinstance(encoder, SparseEncoder)
    plain = NoIdentityEncoder(encoder)
    assert isinstance(plain, DocumentEncoder) and isinstance(plain, QueryEncoder) and not isinstance(plain, IdentifiedEncoder)
    assert encoding_identity(encoder, with_title=True).model == encoder.identity().model
    with pytest.raises(ConfigError, match="cannot use content hashes with NoIdentityEncoder"):
        encoding_identity(plain, with_title=True)


def test_the_encoding_identity_is_the_encoders_plus_the_title_and_passage_rules(encoder: SpladeEncoder) -> None:
    own = encoder.identity()
    with_title, without = encoding_identity(encoder, with_title=True), encoding_identity(encoder, with_title=False)
    assert with_title.model_dump(exclude={"with_title", "passages"}) == own.model_dump()
    assert without.differences(with_title) == ["with_title"]
    passages = encoding_identity(encoder, with_title=True, passages=True)
    assert passages.differences(with_title) == ["passages"] and passages.key() != with_title.key()
    assert "passages" not in with_title.key()  # documents written before passages existed keep their content hashes


def test_skip_unchanged_refuses_an_encoder_without_identity(encoder: SpladeEncoder, store: QdrantStore, docs: list[dict[str, Any]]) -> None:
    with pytest.raises(ConfigError) as info:
        ingest(docs, NoIdentityEncoder(encoder), store, IngestConfig(skip_unchanged=True))
    one_line_refusal(info, "skip_unchanged (--skip-unchanged)")
    assert store.count() == 0  # refused before any work


def test_a_checkpoint_refuses_an_encoder_without_identity(
    encoder: SpladeEncoder, store: QdrantStore, docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    checkpoint = tmp_path / "ingest.ckpt"
    source = write_jsonl(tmp_path / "docs.jsonl", docs)
    with pytest.raises(ConfigError) as info:
        ingest_file(source, NoIdentityEncoder(encoder), store, IngestConfig(batch_size=10, checkpoint=checkpoint))
    one_line_refusal(info, "a checkpoint (--checkpoint)")
    assert store.count() == 0 and not checkpoint.exists()


def test_delete_missing_refuses_an_encoder_without_identity(encoder: SpladeEncoder, store: QdrantStore, docs: list[dict[str, Any]]) -> None:
    ingest(docs, encoder, store)
    with pytest.raises(ConfigError) as info:
        ingest(docs[:10], NoIdentityEncoder(encoder), store, IngestConfig(delete_missing=True, skip_unchanged=True))
    text = one_line_refusal(info, "delete_missing (--delete-missing)")
    assert "skip_unchanged (--skip-unchanged) and delete_missing" in text  # every feature that needs it is named
    assert store.count() == len(docs)  # nothing deleted


def test_without_those_features_it_ingests_and_searches_and_stores_no_content_hash(
    encoder: SpladeEncoder, store: QdrantStore, docs: list[dict[str, Any]]
) -> None:
    plain = NoIdentityEncoder(encoder)
    report = ingest(docs, plain, store, IngestConfig(batch_size=10))
    assert report.accepted == len(docs) and store.count() == len(docs)
    stored = store.fetch_payloads([d["_id"] for d in docs], [CONTENT_HASH_FIELD, "text"])
    assert len(stored) == len(docs) and not any(CONTENT_HASH_FIELD in p for p in stored.values())
    (hits,) = search(store, plain, [docs[3]["text"]], top_k=3, explain=True)
    assert hits[0].id == docs[3]["_id"] and hits[0].terms
    # A later run with an identified encoder finds no hash to match: everything is encoded again.
    again = ingest(docs, encoder, store, IngestConfig(batch_size=10, skip_unchanged=True))
    assert (again.unchanged, again.updated) == (0, len(docs))
    assert ingest(docs, encoder, store, IngestConfig(batch_size=10, skip_unchanged=True)).unchanged == len(docs)


def test_a_checkpoint_without_encoding_identity_is_never_resumed(
    encoder: SpladeEncoder, store: QdrantStore, docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    """A file whose encoding is null (no run writes one) is refused like another model's."""
    checkpoint = tmp_path / "ingest.ckpt"
    source = write_jsonl(tmp_path / "docs.jsonl", docs)
    config = IngestConfig(batch_size=10, checkpoint=checkpoint)

    def stop_after_first_batch(_: int) -> None:  # leave a checkpoint behind, as an interrupted run does
        raise RuntimeError("interrupted")

    with pytest.raises(IngestError):
        ingest_file(source, encoder, store, config, progress=stop_after_first_batch)
    saved = CheckpointFile(checkpoint).load()
    assert saved is not None and saved.run.encoding == encoding_identity(encoder, with_title=True)
    checkpoint.write_text(saved.model_copy(update={"run": saved.run.model_copy(update={"encoding": None})}).model_dump_json())
    with pytest.raises(ResumeError, match=r"another model or encoding options \(differs in: encoder identity\)"):
        ingest_file(source, encoder, store, config)


def test_the_cli_refuses_skip_unchanged_with_an_encoder_without_identity(
    encoder: SpladeEncoder, docs: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("splade_connectors.cli.ingesting.load_encoder", lambda args: NoIdentityEncoder(encoder))
    corpus = write_jsonl(tmp_path / "c.jsonl", docs)
    code = main(["ingest", "--no-progress", "-i", str(corpus), "--qdrant-path", str(tmp_path / "q"), "--skip-unchanged"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (line,) = [x for x in err.replace("\r", "\n").splitlines() if x.startswith("error:")]
    assert "skip_unchanged (--skip-unchanged)" in line and "NoIdentityEncoder" in line and "no identity()" in line

"""Checkpoints bound to their run: validated on load, refused for another source, store, collection or model,
refused when the store lost data, never a silent success."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from splade_connectors.cli import main
from splade_connectors.errors import IngestError, ResumeError
from splade_connectors.ingest import IngestConfig, ingest, ingest_file
from splade_connectors.ingest.checkpoint import CheckpointFile
from splade_connectors.registry import build_store
from tests.splade_connectors.ingest.conftest import CountingEncoder, InterruptedStore, store_config_for, write_jsonl
from trainer.encoder import EncodeOptions, SpladeEncoder

pytestmark = pytest.mark.filterwarnings("ignore:Qdrant client version:UserWarning")

BATCH = 20


# ---- loading: one line, never a traceback ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"version": 2, "run": {"sou', "is unreadable (JSONDecodeError"),
        ("", "is unreadable (JSONDecodeError"),
        ('{"source_id": "corpus.jsonl:abc", "records_done": 40}', "is not a version-2 ingestion checkpoint (found None)"),
        ("[1, 2]", "is not a version-2 ingestion checkpoint (found 'list')"),
        ('{"version": 2, "run": {}, "records_done": "forty"}', "is invalid (run.source: Field required (+"),
    ],
)
def test_unusable_checkpoint_files_are_one_line_resume_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "ingest.ckpt"
    path.write_text(content)
    with pytest.raises(ResumeError) as info:
        CheckpointFile(path).load()
    text = str(info.value)
    assert message in text and "\n" not in text and text.endswith("delete it to start over")


def test_non_numeric_records_done_names_the_field(tmp_path: Path, encoder: SpladeEncoder, make_store: Any, short_docs: list[dict[str, Any]]) -> None:
    store = make_store("nonnum")
    checkpoint = tmp_path / "ingest.ckpt"
    config = IngestConfig(batch_size=BATCH, checkpoint=checkpoint)
    with pytest.raises(IngestError):
        ingest(short_docs[:100], encoder, InterruptedStore(store, after=2), config)
    state = json.loads(checkpoint.read_text())
    state["records_done"] = "forty"
    checkpoint.write_text(json.dumps(state))
    with pytest.raises(ResumeError, match=r"is invalid \(records_done: Input should be a valid integer"):
        ingest(short_docs[:100], encoder, store, config)


def test_bad_checkpoint_on_the_command_line_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"_id": "a", "text": "x"}])
    checkpoint = tmp_path / "bad.ckpt"
    checkpoint.write_text('{"records_done": 12')
    code = main(["ingest", "--no-progress", "-i", str(corpus), "--qdrant-path", str(tmp_path / "q"), "--checkpoint", str(checkpoint)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (line,) = [x for x in err.replace("\r", "\n").splitlines() if x.startswith("error:")]
    assert f"checkpoint {checkpoint} is unreadable" in line


# ---- resuming on the real stores -----------------------------------------------------------------------
@pytest.mark.live
def test_interrupted_run_resumes_exactly(
    make_store: Any, encoder: SpladeEncoder, short_docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    """A crash after 2 batches; the resume checks the store, skips what is
    done, and reports the lone-surrogate record of a later batch instead of crashing on it."""
    docs = [dict(d) for d in short_docs[:100]]
    docs[67]["text"] = "broken \ud800 text"
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [json.dumps(d) for d in docs])
    store = make_store("resume")
    checkpoint = tmp_path / "ingest.ckpt"
    config = IngestConfig(batch_size=BATCH, checkpoint=checkpoint)
    with pytest.raises(IngestError, match="injected crash"):
        ingest_file(corpus, encoder, InterruptedStore(store, after=2), config)
    saved = json.loads(checkpoint.read_text())
    assert saved["records_done"] == 2 * BATCH and saved["new"] == 2 * BATCH
    assert saved["run"]["collection"] == store.name and saved["run"]["store"] == store.identity()

    counting = CountingEncoder(encoder)
    report = ingest_file(corpus, counting, store, config)
    assert report.skipped_by_resume == 2 * BATCH and report.accepted == 59 and report.records == 60
    assert [(r.position, r.doc_id) for r in report.invalid] == [(67, docs[67]["_id"])]
    assert docs[2 * BATCH]["text"] == counting.texts[0] and len(counting.texts) == 59  # finished batches not re-encoded
    assert store.count() == 99 and report.stored == 99
    assert not checkpoint.exists()


@pytest.fixture
def interrupted(make_store: Any, encoder: SpladeEncoder, short_docs: list[dict[str, Any]], tmp_path: Path) -> Any:
    """A run interrupted after 3 batches: (store, corpus path, checkpoint path)."""
    corpus = write_jsonl(tmp_path / "corpus.jsonl", short_docs[:120])
    store = make_store("crashed")
    checkpoint = tmp_path / "ingest.ckpt"
    with pytest.raises(IngestError):
        ingest_file(corpus, encoder, InterruptedStore(store, after=3), IngestConfig(batch_size=BATCH, checkpoint=checkpoint))
    return store, corpus, checkpoint


@pytest.mark.live
def test_checkpoint_of_another_collection_is_refused(interrupted: Any, make_store: Any, encoder: SpladeEncoder) -> None:
    store, corpus, checkpoint = interrupted
    other = make_store("other")
    with pytest.raises(ResumeError, match=f"belongs to collection/index '{store.name}', not '{other.name}'"):
        ingest_file(corpus, encoder, other, IngestConfig(batch_size=BATCH, checkpoint=checkpoint))
    assert other.count() == 0 and checkpoint.exists()


@pytest.mark.live
def test_checkpoint_of_another_model_or_options_is_refused(
    interrupted: Any, splade_model: Any, encoder: SpladeEncoder
) -> None:
    store, corpus, checkpoint = interrupted
    pruned = SpladeEncoder(splade_model, device="cpu", options=EncodeOptions(top_k=64))
    with pytest.raises(ResumeError, match=r"another model or encoding options \(differs in: top_k\)"):
        ingest_file(corpus, pruned, store, IngestConfig(batch_size=BATCH, checkpoint=checkpoint))
    with pytest.raises(ResumeError, match=r"differs in: with_title"):
        ingest_file(corpus, encoder, store, IngestConfig(batch_size=BATCH, checkpoint=checkpoint, with_title=False))


@pytest.mark.live
def test_store_that_lost_its_data_is_refused(interrupted: Any, encoder: SpladeEncoder, vocabulary: list[str]) -> None:
    """The bundled OpenSearch restarted empty (or a dropped collection): no silent skip of 60 records."""
    store, corpus, checkpoint = interrupted
    store.drop()
    fresh = build_store(store.config, vocabulary=vocabulary).open(create=True)
    try:
        with pytest.raises(ResumeError, match=r"holds 0 documents but checkpoint .* accounts for at least 60: the store lost data"):
            ingest_file(corpus, encoder, fresh, IngestConfig(batch_size=BATCH, checkpoint=checkpoint))
        assert checkpoint.exists() and fresh.count() == 0
    finally:
        fresh.close()


@pytest.mark.live
def test_partly_lost_data_is_found_by_count_or_probe(interrupted: Any, encoder: SpladeEncoder, short_docs: list[dict[str, Any]]) -> None:
    store, corpus, checkpoint = interrupted
    probes = json.loads(checkpoint.read_text())["probe_ids"]
    assert len(probes) == 8 and set(probes) <= {d["_id"] for d in short_docs[:60]}
    store.delete([probes[0]])
    with pytest.raises(ResumeError, match="lost data"):
        ingest_file(corpus, encoder, store, IngestConfig(batch_size=BATCH, checkpoint=checkpoint))


@pytest.mark.live
def test_checkpoint_past_the_end_of_the_input_is_an_error(make_store: Any, encoder: SpladeEncoder, short_docs: list[dict[str, Any]], tmp_path: Path) -> None:
    """records_done past the end: nothing ingested, exit 0 and the checkpoint deleted - no more."""
    store = make_store("pastend")
    checkpoint = tmp_path / "ingest.ckpt"
    config = IngestConfig(batch_size=BATCH, checkpoint=checkpoint)
    with pytest.raises(IngestError):
        ingest(short_docs[:100], encoder, InterruptedStore(store, after=3), config)
    with pytest.raises(ResumeError, match="says 60 records are done but the input has only 40"):
        ingest(short_docs[:40], encoder, store, config)
    assert checkpoint.exists()


@pytest.mark.live
def test_checkpoint_of_another_store_kind_is_refused(
    qdrant_url: str, opensearch_store: Any, vocabulary: list[str], encoder: SpladeEncoder, short_docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    checkpoint = tmp_path / "ingest.ckpt"
    config = IngestConfig(batch_size=BATCH, checkpoint=checkpoint)
    qdrant = build_store(store_config_for("qdrant", qdrant_url, "ingest-kind-a"), vocabulary=vocabulary).open()
    opensearch = build_store(store_config_for("opensearch", opensearch_store, "ingest-kind-a"), vocabulary=vocabulary).open()
    try:
        with pytest.raises(IngestError):
            ingest(short_docs[:60], encoder, InterruptedStore(qdrant, after=1), config)
        with pytest.raises(ResumeError, match="belongs to a qdrant store, not opensearch"):
            ingest(short_docs[:60], encoder, opensearch, config)
    finally:
        for store in (qdrant, opensearch):
            store.drop()
            store.close()


@pytest.mark.live
def test_same_data_at_another_address_is_accepted_with_a_warning(
    qdrant_url: str, vocabulary: list[str], encoder: SpladeEncoder, short_docs: list[dict[str, Any]], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Same server, collection and data reached by another URL (a restart on a new port, a DNS alias)."""
    checkpoint = tmp_path / "ingest.ckpt"
    config = IngestConfig(batch_size=BATCH, checkpoint=checkpoint)
    first = build_store(store_config_for("qdrant", qdrant_url, "ingest-moved"), vocabulary=vocabulary).open()
    alias = qdrant_url.replace("127.0.0.1", "localhost")
    assert alias != qdrant_url
    second = build_store(store_config_for("qdrant", alias, "ingest-moved"), vocabulary=vocabulary).open()
    try:
        with pytest.raises(IngestError):
            ingest(short_docs[:100], encoder, InterruptedStore(first, after=2), config)
        with caplog.at_level(logging.WARNING, logger="splade_connectors.ingest.checkpoint"):
            report = ingest(short_docs[:100], encoder, second, config)
        assert report.skipped_by_resume == 40 and report.accepted == 60 and second.count() == 100
        assert "which holds the checkpoint's data" in caplog.text
    finally:
        first.drop()
        first.close()
        second.close()

"""Ingestion through the shared pipeline into Qdrant: resume after a crash, retries, permanent errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from qdrant_client.http.exceptions import UnexpectedResponse

from splade_connectors.ingest import IngestConfig, IngestError, RetryPolicy, ingest
from splade_connectors.qdrant.errors import translate
from splade_connectors.store import StoreError, TransientStoreError
from tests.splade_connectors.qdrant.conftest import FaultyStore, QdrantTarget, ReplayEncoder, doc_text, stored_doc_ids

pytestmark = pytest.mark.live

DOCS, BATCH, FAIL_AFTER = 150, 20, 3
FAST_RETRY = RetryPolicy(attempts=3, initial_wait=0, max_wait=0)


@pytest.fixture(scope="module")
def corpus(scifact_encoded: Any) -> list[dict[str, str]]:
    return scifact_encoded.slice.corpus[:DOCS]


def test_killed_ingestion_resumes_from_checkpoint(
    qdrant_target: QdrantTarget, corpus: list[dict[str, str]], replay_encoder: Callable[[], ReplayEncoder], tmp_path: Path
) -> None:
    store = qdrant_target.new_store("resume")
    checkpoint = tmp_path / "ingest.ckpt"
    config = IngestConfig(batch_size=BATCH, checkpoint=checkpoint, retry=FAST_RETRY)
    crashing = FaultyStore(store, after=FAIL_AFTER, error=StoreError("disk on fire"), times=10**6)
    with pytest.raises(IngestError, match="disk on fire"):
        ingest(corpus, replay_encoder(), crashing, config)
    assert crashing.calls == FAIL_AFTER + 1  # a permanent error is not retried
    done = FAIL_AFTER * BATCH
    assert store.count() == done
    assert json.loads(checkpoint.read_text())["records_done"] == done

    encoder = replay_encoder()
    report = ingest(corpus, encoder, store, config)
    assert report.skipped_by_resume == done and report.accepted == DOCS - done
    assert encoder.encoded == [doc_text(d) for d in corpus[done:]]  # finished batches are not re-encoded
    ids = stored_doc_ids(store)
    assert store.count() == DOCS and len(ids) == DOCS and set(ids) == {d["_id"] for d in corpus}
    assert not checkpoint.exists()


def test_transient_error_is_retried(
    qdrant_target: QdrantTarget, corpus: list[dict[str, str]], replay_encoder: Callable[[], ReplayEncoder]
) -> None:
    store = qdrant_target.new_store("transient")
    unavailable = translate(UnexpectedResponse(503, "Service Unavailable", b"{}", httpx.Headers()), store.describe(), "upsert")
    flaky = FaultyStore(store, after=1, error=unavailable)
    report = ingest(corpus, replay_encoder(), flaky, IngestConfig(batch_size=BATCH, retry=FAST_RETRY))
    batches = -(-DOCS // BATCH)
    assert flaky.raised == 1 and flaky.calls == batches + 1
    assert report.accepted == DOCS and store.count() == DOCS


def test_transient_errors_give_up_after_the_retry_budget(
    qdrant_target: QdrantTarget, corpus: list[dict[str, str]], replay_encoder: Callable[[], ReplayEncoder]
) -> None:
    store = qdrant_target.new_store("exhausted")
    flaky = FaultyStore(store, after=0, error=TransientStoreError("timeout"), times=10**6)
    with pytest.raises(IngestError):
        ingest(corpus, replay_encoder(), flaky, IngestConfig(batch_size=BATCH, retry=FAST_RETRY))
    assert flaky.calls == FAST_RETRY.attempts and store.count() == 0


def test_validation_error_is_not_retried(
    qdrant_target: QdrantTarget, corpus: list[dict[str, str]], replay_encoder: Callable[[], ReplayEncoder]
) -> None:
    store = qdrant_target.new_store("permanent")
    refused = translate(UnexpectedResponse(400, "Bad Request", b'{"status":{"error":"bad"}}', httpx.Headers()), store.describe(), "upsert")
    bad = FaultyStore(store, after=1, error=refused)
    with pytest.raises(IngestError):
        ingest(corpus, replay_encoder(), bad, IngestConfig(batch_size=BATCH, retry=FAST_RETRY))
    assert bad.calls == 2 and store.count() == BATCH


def test_real_validation_error_from_qdrant_is_permanent(
    qdrant_target: QdrantTarget, corpus: list[dict[str, str]], replay_encoder: Callable[[], ReplayEncoder]
) -> None:
    """A dense vector into a sparse-only collection: the store refuses it, nothing is retried."""
    store = qdrant_target.new_store("nodense")
    with pytest.raises(IngestError, match="no dense vector"):
        ingest(
            corpus[:10],
            replay_encoder(),
            store,
            IngestConfig(batch_size=5, retry=FAST_RETRY),
            dense_encoder=lambda texts: [[0.1] * 4 for _ in texts],
        )
    assert store.count() == 0

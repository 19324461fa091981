"""Failures of a real Qdrant server, as the user sees them: one error line naming the collection, the location
and the cause; transient (retried) versus permanent (not retried) checked against the real server.

Each test that stops or freezes a server starts its own from the native binary (`qdrant_binary`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from splade_connectors.cli import main
from splade_connectors.errors import IngestError, NotFoundError, StoreUnavailableError, TransientStoreError
from splade_connectors.ingest import IngestConfig, RetryPolicy, ingest
from splade_connectors.live.qdrant_server import QdrantServer
from splade_connectors.qdrant import QdrantConfig, QdrantStore
from splade_connectors.records import Document, EncodedDocument
from tests.splade_connectors.qdrant.conftest import FaultyStore, ReplayEncoder, stored_doc_ids
from trainer.sparse import SparseVector

pytestmark = pytest.mark.live

NO_RETRY = RetryPolicy(attempts=1)


@pytest.fixture
def own_server(qdrant_binary: str) -> Iterator[QdrantServer]:
    server = QdrantServer(qdrant_binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _config(server: QdrantServer, name: str, **options: Any) -> QdrantConfig:
    return QdrantConfig(url=server.url, grpc_port=server.grpc_port, collection=name, **options)


def _docs(n: int) -> list[EncodedDocument]:
    return [
        EncodedDocument(document=Document(id=f"doc-{i}", text=f"text {i}"), sparse=SparseVector.from_pairs({100 + i: 1.0, 7: 0.5}))
        for i in range(n)
    ]


@pytest.mark.parametrize("grpc", [False, True], ids=["rest", "grpc"])
def test_unreachable_url_is_one_clear_transient_error(grpc: bool) -> None:
    config = QdrantConfig(url="http://127.0.0.1:1", grpc_port=2, prefer_grpc=grpc, collection="docs", timeout=5)
    with pytest.raises(StoreUnavailableError) as caught:
        QdrantStore(config).open()
    message = str(caught.value)
    assert message.startswith("qdrant collection 'docs' (http://127.0.0.1:1): open failed: cannot reach the server")
    assert "refused" in message.lower() and "\n" not in message
    assert caught.value.transient


def test_cli_reports_an_unreachable_url_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "--qdrant-url", "http://127.0.0.1:1", "--collection", "docs", "-q", "anything"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: qdrant collection 'docs' (http://127.0.0.1:1): open failed: cannot reach the server")
    assert "Traceback" not in err and "qdrant_client" not in err


@pytest.mark.parametrize("grpc", [False, True], ids=["rest", "grpc"])
def test_request_timeout_is_transient_and_the_store_recovers(own_server: QdrantServer, grpc: bool) -> None:
    """A frozen server (SIGSTOP) makes requests time out: a transient error; thawed, the same store works again."""
    with QdrantStore(_config(own_server, "slow", timeout=1, prefer_grpc=grpc)) as store:
        store.upsert(_docs(3))
        own_server.freeze()
        try:
            started = time.monotonic()
            # count() first reads the collection's encoding record (once per open: is it a passage collection?),
            # so the request that times out is that read or the count itself
            with pytest.raises(TransientStoreError, match=r"'slow'.*(count|read of the collection metadata) failed: timed out") as caught:
                store.count()
            assert time.monotonic() - started < 10
            assert caught.value.transient
        finally:
            own_server.thaw()
        assert store.count() == 3


def test_server_restarted_mid_ingestion_is_retried_to_completion(
    own_server: QdrantServer, scifact_encoded: Any, replay_encoder: Callable[[], ReplayEncoder], caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL the server after the 3rd batch and restart it 1.5 s later: the pipeline's retries carry the run through."""
    corpus = scifact_encoded.slice.corpus[:300]
    store = QdrantStore(_config(own_server, "restart")).open()
    restarted = threading.Event()

    def kill_then_restart(done_batches: list[int] = [0]) -> None:  # noqa: B006 - a counter shared by calls
        done_batches[0] += 1
        if done_batches[0] == 3:
            own_server.kill()

            def later() -> None:
                time.sleep(1.5)
                own_server.start()
                restarted.set()

            threading.Thread(target=later, daemon=True).start()

    patient = RetryPolicy(attempts=8, initial_wait=0.5, max_wait=4.0)
    report = ingest(corpus, replay_encoder(), store, IngestConfig(batch_size=50, retry=patient), progress=lambda n: kill_then_restart())
    assert restarted.is_set()
    assert report.accepted == 300 and store.count() == 300
    assert sorted(stored_doc_ids(store)) == sorted(d["_id"] for d in corpus)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert retries and all("cannot reach the server" in r.getMessage() for r in retries)
    store.close()


def test_collection_deleted_mid_ingestion_is_permanent(
    qdrant_server_store: Any, scifact_encoded: Any, replay_encoder: Callable[[], ReplayEncoder]
) -> None:
    """A 404 from the real server is not retried: the run stops at once with the cause named."""
    live = qdrant_server_store
    config = QdrantConfig(url=live.url, api_key=live.api_key, grpc_port=live.grpc_port, collection="vanishing")
    store = QdrantStore(config).open()
    other = QdrantStore(config).open(create=False)
    counting = FaultyStore(store, after=10**9, error=RuntimeError("never"))
    dropped: list[bool] = []

    def drop_after_two(n: int) -> None:
        if counting.calls == 2 and not dropped:
            other.drop()
            dropped.append(True)

    patient = RetryPolicy(attempts=5, initial_wait=0, max_wait=0)
    with pytest.raises(IngestError) as caught:
        ingest(scifact_encoded.slice.corpus[:200], replay_encoder(), counting, IngestConfig(batch_size=50, retry=patient), progress=drop_after_two)
    assert isinstance(caught.value.__cause__, NotFoundError)
    assert "'vanishing'" in str(caught.value) and "not found" in str(caught.value).lower()
    assert counting.calls == 3  # the third write failed once and was not retried
    store.close()
    other.close()

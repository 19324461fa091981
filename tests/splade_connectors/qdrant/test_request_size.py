"""Writes sized by bytes on a Qdrant server: large documents are sent in requests under the server's request
limit, a document larger than the limit is refused and reported while the run goes on, and resume stays exact.

A real server of its own, started with `service.max_request_size_mb = 1` (the default is 32) so that a few
documents of a few hundred kB cross the limit: the test stays small in memory and time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from splade_connectors.errors import IngestError, StoreError
from splade_connectors.ingest import IngestConfig, RetryPolicy, ingest
from splade_connectors.live.qdrant_server import QdrantServer
from splade_connectors.qdrant import QdrantConfig, QdrantStore
from splade_connectors.qdrant.engine import PointData
from splade_connectors.qdrant.sizing import MIB, plan_requests, request_budget, request_bytes
from tests.splade_connectors.qdrant.conftest import FaultyStore, stored_doc_ids
from tests.splade_connectors.qdrant.ingest_and_die import HashEncoder
from trainer.sparse import SparseVector

pytestmark = pytest.mark.live

LIMIT_MB = 1
LARGE = 300_000  # characters: three large documents are over the limit together, two are not
OVERSIZE_AT = 4  # the input position (0-based) of the document larger than the limit
FAST_RETRY = RetryPolicy(attempts=2, initial_wait=0, max_wait=0)


def _text(i: int, size: int) -> str:
    words = f"document {i} about café and naïve tokens, ünïcode escapes grow in JSON "  # non-ASCII on purpose
    return (words * (size // len(words) + 1))[:size]


def _corpus() -> list[dict[str, Any]]:
    """Ten records: eight of 300 kB, one of 1.3 MB (position 4), one small; metadata on each."""
    docs = []
    for i in range(10):
        size = 1_300_000 if i == OVERSIZE_AT else 40 if i == 9 else LARGE
        docs.append({"_id": f"doc-{i}", "title": f"title {i}", "text": _text(i, size), "part": i})
    return docs


@pytest.fixture(scope="module")
def small_limit_server(qdrant_binary: str) -> Iterator[QdrantServer]:
    """A Qdrant server that takes requests of at most 1 MiB."""
    with QdrantServer(qdrant_binary, extra_env={"QDRANT__SERVICE__MAX_REQUEST_SIZE_MB": str(LIMIT_MB)}) as server:
        yield server


def _store(server: QdrantServer, **options: Any) -> QdrantStore:
    config = QdrantConfig(url=server.url, grpc_port=server.grpc_port, collection=f"size-{uuid.uuid4().hex[:8]}", **options)
    return QdrantStore(config).open()


def _check_stored(store: QdrantStore, corpus: list[dict[str, Any]]) -> None:
    """Every document but the oversize one is stored once, with its whole text and metadata."""
    expected = [d for i, d in enumerate(corpus) if i != OVERSIZE_AT]
    ids = stored_doc_ids(store)
    assert store.count() == len(expected) and sorted(ids) == sorted(d["_id"] for d in expected)
    payloads = store.fetch_payloads([d["_id"] for d in corpus], ["text", "title", "metadata"])
    assert set(payloads) == {d["_id"] for d in expected}
    for doc in expected:
        stored = payloads[doc["_id"]]
        assert stored["text"] == doc["text"] and stored["title"] == doc["title"] and stored["metadata"] == {"part": doc["part"]}


@pytest.mark.parametrize(
    ("transport", "max_request_mb"),
    [("rest", LIMIT_MB), ("grpc", LIMIT_MB), ("rest", 32)],
    ids=["rest-limit-known", "grpc-limit-known", "rest-limit-unknown"],
)
def test_large_documents_are_stored_and_an_oversize_one_is_reported(
    small_limit_server: QdrantServer, transport: str, max_request_mb: int
) -> None:
    """A batch of ten, 3.7 MB in all, on a server that takes 1 MiB per request.

    Told the limit, the store splits the batch into requests under it and refuses the 1.3 MB document
    before sending it (REST and gRPC alike, though the server checks REST bodies only). Not told (the
    default 32 MiB), the server's refusals ("larger than allowed") split the batch until the documents
    that fit are written and the one that cannot is named, by the server's own message.
    """
    corpus = _corpus()
    store = _store(small_limit_server, max_request_mb=max_request_mb, prefer_grpc=transport == "grpc")
    try:
        report = ingest(corpus, HashEncoder(), store, IngestConfig(batch_size=10, retry=FAST_RETRY))
        assert report.accepted == len(corpus) - 1 and report.invalid_count == 1
        refused = report.invalid[0]
        assert (refused.position, refused.doc_id) == (OVERSIZE_AT, f"doc-{OVERSIZE_AT}")
        assert "too large" in refused.reason
        if max_request_mb == LIMIT_MB:
            assert "over the request limit of 1 MiB" in refused.reason
        else:
            assert "larger than allowed" in refused.reason  # the server's own refusal
        _check_stored(store, corpus)
    finally:
        store.drop()
        store.close()


def test_resume_after_a_stop_is_exact(small_limit_server: QdrantServer, tmp_path: Path) -> None:
    """A run stopped after its first batch resumes from the checkpoint: no document lost, none twice, the
    oversize one (in the first batch) reported by the run that met it and skipped by the resumed run."""
    corpus = _corpus()
    store = _store(small_limit_server, max_request_mb=LIMIT_MB)
    config = IngestConfig(batch_size=5, checkpoint=tmp_path / "resume.json", retry=FAST_RETRY)
    try:
        # the first batch takes two upserts (the oversize document refused, the other four written): stop at the third
        stopping = FaultyStore(store, after=2, error=StoreError("the disk is full"), times=1)
        with pytest.raises(IngestError, match="the disk is full"):
            ingest(corpus, HashEncoder(), stopping, config)
        first = stored_doc_ids(store)
        assert sorted(first) == [f"doc-{i}" for i in range(5) if i != OVERSIZE_AT]

        report = ingest(corpus, HashEncoder(), store, config)
        assert report.skipped_by_resume == 5 and report.accepted == 5 and report.invalid_count == 0
        _check_stored(store, corpus)
    finally:
        store.drop()
        store.close()


def test_the_embedded_engine_takes_documents_of_any_size(tmp_path: Path) -> None:
    """The embedded engine has no request limit: the same corpus is stored whole, even with a 1 MiB setting."""
    corpus = _corpus()
    with QdrantStore(QdrantConfig(path=str(tmp_path / "qdrant"), collection="large", max_request_mb=LIMIT_MB)) as store:
        report = ingest(corpus, HashEncoder(), store, IngestConfig(batch_size=10))
        assert report.accepted == len(corpus) and report.invalid_count == 0
        assert store.count() == len(corpus)
        stored = store.fetch_payloads([f"doc-{OVERSIZE_AT}"], ["text"])
        assert stored[f"doc-{OVERSIZE_AT}"]["text"] == corpus[OVERSIZE_AT]["text"]


def test_requests_are_planned_under_the_budget() -> None:
    """The planner: consecutive requests, each within the budget, about total/parts bytes when parallel."""
    budget = request_budget(LIMIT_MB)
    assert budget < LIMIT_MB * MIB
    sizes = [300_000, 300_000, 300_000, 10, 900_000, 10]
    ranges = plan_requests(sizes, budget=budget)
    assert [list(r) for r in ranges] == [[0, 1, 2, 3], [4, 5]]
    assert [i for r in ranges for i in r] == list(range(len(sizes)))
    assert all(sum(sizes[i] for i in r) <= budget for r in ranges)
    assert len(plan_requests([100] * 8, budget=budget, parts=4)) == 4
    with pytest.raises(ValueError):
        plan_requests([budget + 1], budget=budget)


def test_a_point_size_estimate_is_never_below_its_json() -> None:
    """The estimate bounds the JSON qdrant-client sends, whatever the characters (escapes, non-ASCII, emoji)."""
    import json

    from qdrant_client import models

    text = "\"quotes\" \\ back\nslash é 中文 😀 \x01" * 1000
    vector = SparseVector.from_pairs([(i * 997 % 30522, 1 / (i + 3)) for i in range(300)])
    point = PointData(id=str(uuid.uuid4()), sparse=vector, payload={"doc_id": "x", "text": text, "metadata": {"n": [1.5e-300, None]}})
    indices, values = vector.to_lists()
    struct = models.PointStruct(id=point.id, vector={"splade": models.SparseVector(indices=indices, values=values)}, payload=point.payload)
    sent = json.dumps({"points": [struct.model_dump(exclude_none=True)]}, ensure_ascii=False).encode()
    assert request_bytes(point) >= len(sent)


def test_the_limit_is_a_cli_option() -> None:
    """`--qdrant-max-request-mb` reaches the store config (default: Qdrant's own 32 MiB)."""
    from splade_connectors.cli import build_parser
    from splade_connectors.cli.stores import store_config_from_args

    parser = build_parser()
    default = store_config_from_args(parser.parse_args(["search", "--qdrant-url", "http://127.0.0.1:6333", "-q", "x"]))
    given = store_config_from_args(
        parser.parse_args(["search", "--qdrant-url", "http://127.0.0.1:6333", "--qdrant-max-request-mb", "4", "-q", "x"])
    )
    assert isinstance(default, QdrantConfig) and isinstance(given, QdrantConfig)
    assert (default.max_request_mb, given.max_request_mb) == (32, 4)

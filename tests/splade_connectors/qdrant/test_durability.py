"""Durability: a real server SIGKILLed mid-ingestion and restarted on the same storage, and an ingesting
process SIGKILLed while writing to the embedded engine. Resuming from the checkpoint gives the exact
count, no duplicates, and stored vectors (and payloads) equal to a clean run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from splade_connectors.errors import IngestError
from splade_connectors.ingest import IngestConfig, RetryPolicy, ingest, ingest_file
from splade_connectors.live.qdrant_server import QdrantServer
from splade_connectors.qdrant import QdrantConfig, QdrantStore
from tests.conftest import REPO_ROOT
from tests.splade_connectors.qdrant.conftest import ReplayEncoder, stored_doc_ids
from tests.splade_connectors.qdrant.ingest_and_die import HashEncoder

pytestmark = pytest.mark.live

DOCS, BATCH, KILL_AFTER = 600, 40, 6
QUICK_GIVE_UP = RetryPolicy(attempts=2, initial_wait=0, max_wait=0)


def _snapshot(store: QdrantStore, doc_ids: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    return store.fetch_vectors(doc_ids), store.fetch_payloads(doc_ids, ["text", "title", "metadata"])


def test_server_killed_mid_ingestion_resumes_exactly(
    qdrant_binary: str, scifact_encoded: Any, replay_encoder: Callable[[], ReplayEncoder], tmp_path: Path
) -> None:
    corpus = scifact_encoded.slice.corpus[:DOCS]
    doc_ids = [d["_id"] for d in corpus]
    checkpoint = tmp_path / "ingest.ckpt"
    config_of: Callable[[QdrantServer, str], QdrantConfig] = lambda s, name: QdrantConfig(url=s.url, grpc_port=s.grpc_port, collection=name)
    with QdrantServer(qdrant_binary) as server:
        store = QdrantStore(config_of(server, "durable")).open()
        batches = [0]

        def kill_server(_: int) -> None:
            batches[0] += 1
            if batches[0] == KILL_AFTER:
                server.kill()  # SIGKILL right after this batch was acknowledged and checkpointed

        with pytest.raises(IngestError, match="cannot reach the server"):
            ingest(corpus, replay_encoder(), store, IngestConfig(batch_size=BATCH, checkpoint=checkpoint, retry=QUICK_GIVE_UP), progress=kill_server)
        store.close()
        records_done = json.loads(checkpoint.read_text())["records_done"]
        assert records_done == KILL_AFTER * BATCH

        server.start()  # same storage, same ports
        resumed = QdrantStore(config_of(server, "durable")).open(create=False)
        assert resumed.count() == records_done  # every acknowledged write survived the SIGKILL
        report = ingest(corpus, replay_encoder(), resumed, IngestConfig(batch_size=BATCH, checkpoint=checkpoint))
        assert report.skipped_by_resume == records_done and report.accepted == DOCS - records_done
        assert not checkpoint.exists()

        ids = stored_doc_ids(resumed)
        assert resumed.count() == DOCS and len(ids) == DOCS and sorted(ids) == sorted(doc_ids)

        clean = QdrantStore(config_of(server, "clean")).open()
        ingest(corpus, replay_encoder(), clean, IngestConfig(batch_size=BATCH))
        vectors, payloads = _snapshot(resumed, doc_ids)
        clean_vectors, clean_payloads = _snapshot(clean, doc_ids)
        assert vectors == clean_vectors and payloads == clean_payloads and len(vectors) == DOCS
        assert all(vectors[d] == scifact_encoded.doc_vectors[d] for d in doc_ids)
        for s in (resumed, clean):
            s.close()


def _write_corpus(corpus: list[dict[str, str]], path: Path) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    return path


def _ingest_in_subprocess(corpus: Path, folder: Path, collection: str, checkpoint: Path, die_after: int) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "tests.splade_connectors.qdrant.ingest_and_die", str(corpus), str(folder), collection, str(checkpoint), str(BATCH), str(die_after)]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, timeout=300, check=False).returncode


def test_embedded_engine_survives_the_ingesting_process_being_killed(scifact_encoded: Any, tmp_path: Path) -> None:
    corpus = scifact_encoded.slice.corpus[:DOCS]
    doc_ids = [d["_id"] for d in corpus]
    source = _write_corpus(corpus, tmp_path / "corpus.jsonl")
    folder, checkpoint = tmp_path / "qdrant", tmp_path / "ingest.ckpt"

    assert _ingest_in_subprocess(source, folder, "durable", checkpoint, die_after=KILL_AFTER) == -9  # SIGKILLed
    records_done = json.loads(checkpoint.read_text())["records_done"]
    assert records_done == KILL_AFTER * BATCH

    with QdrantStore(QdrantConfig(path=str(folder), collection="durable")).open(create=False) as store:  # lock released by the kill
        assert store.count() == records_done  # the WAL kept every acknowledged write
        report = ingest_file(source, HashEncoder(), store, IngestConfig(batch_size=BATCH, checkpoint=checkpoint))
        assert report.skipped_by_resume == records_done and report.accepted == DOCS - records_done
        ids = stored_doc_ids(store)
        assert store.count() == DOCS and len(ids) == DOCS and sorted(ids) == sorted(doc_ids)
        vectors, payloads = _snapshot(store, doc_ids)

    assert _ingest_in_subprocess(source, folder, "clean", tmp_path / "clean.ckpt", die_after=0) == 0
    with QdrantStore(QdrantConfig(path=str(folder), collection="clean")).open(create=False) as clean:
        clean_vectors, clean_payloads = _snapshot(clean, doc_ids)
    assert vectors == clean_vectors and payloads == clean_payloads and len(vectors) == DOCS
    expected = {d["_id"]: HashEncoder.vector(f"{d['title']}\n{d['text']}" if d["title"] else d["text"]) for d in corpus}
    assert all(vectors[d] == expected[d] for d in doc_ids)

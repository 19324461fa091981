"""A real server started with an API key: the right key works (REST and gRPC), a wrong or missing one is a
clear, permanent authentication error, and the key appears in no log line, output or file."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from splade_connectors.cli import main
from splade_connectors.errors import AuthenticationError, IngestError
from splade_connectors.ingest import IngestConfig, ingest
from splade_connectors.live.qdrant_server import QdrantServer
from splade_connectors.qdrant import QdrantConfig, QdrantStore

pytestmark = pytest.mark.live

KEY = "k3y-9f2e71c0d4a8b5-never-printed"


@pytest.fixture(scope="module")
def keyed_server(qdrant_binary: str) -> Iterator[QdrantServer]:
    with QdrantServer(qdrant_binary, api_key=KEY) as server:
        yield server


def _config(server: QdrantServer, key: str | None, *, grpc: bool = False, name: str = "secured") -> QdrantConfig:
    return QdrantConfig(url=server.url, grpc_port=server.grpc_port, prefer_grpc=grpc, api_key=key, collection=name)


@pytest.mark.parametrize("grpc", [False, True], ids=["rest", "grpc"])
def test_right_key_works(keyed_server: QdrantServer, grpc: bool, scifact_encoded: Any, replay_encoder: Any) -> None:
    with QdrantStore(_config(keyed_server, KEY, grpc=grpc, name=f"secured-{int(grpc)}")) as store:
        ingest(scifact_encoded.slice.corpus[:50], replay_encoder(), store, IngestConfig(batch_size=20))
        assert store.count() == 50
        query = scifact_encoded.doc_vectors[scifact_encoded.slice.corpus[0]["_id"]]
        assert store.search_batch([query], top_k=1)[0][0].id == scifact_encoded.slice.corpus[0]["_id"]
        assert (store.storage_bytes() or 0) > 0  # the telemetry call carries the key too
        store.drop()


@pytest.mark.parametrize("grpc", [False, True], ids=["rest", "grpc"])
@pytest.mark.parametrize("key", ["wrong-key-123", None], ids=["wrong", "missing"])
def test_wrong_or_missing_key_is_a_clear_permanent_error(keyed_server: QdrantServer, grpc: bool, key: str | None) -> None:
    with pytest.raises(AuthenticationError) as caught:
        QdrantStore(_config(keyed_server, key, grpc=grpc)).open()
    message = str(caught.value)
    assert message.startswith(f"qdrant collection 'secured' ({keyed_server.url}): open failed: the server refused the API key")
    assert not caught.value.transient and "\n" not in message
    assert KEY not in message and (key is None or key not in message)


def _files_containing(root: Path, needle: str) -> list[Path]:
    data = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


def test_key_appears_in_no_log_line_output_or_file(
    keyed_server: QdrantServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, scifact_encoded: Any, replay_encoder: Any,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and qdrant-client included
    checkpoint = tmp_path / "ingest.ckpt"
    store = QdrantStore(_config(keyed_server, KEY, name="audited")).open()
    calls = [0]

    def stop_early(_: int) -> None:  # leave a checkpoint behind, as an interrupted run does
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("interrupted")

    with pytest.raises(IngestError):
        ingest(scifact_encoded.slice.corpus[:100], replay_encoder(), store, IngestConfig(batch_size=20, checkpoint=checkpoint), progress=stop_early)
    with pytest.raises(AuthenticationError):
        QdrantStore(_config(keyed_server, "wrong-key-123", name="audited")).open()
    logging.getLogger("audit").debug("store: %r config: %r dump: %s", store, store.config, store.config.model_dump())
    store.close()

    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in scifact_encoded.slice.corpus[:5]), encoding="utf-8")
    monkeypatch.setenv("QDRANT_API_KEY", KEY)
    cli_store = ["--qdrant-url", keyed_server.url, "--collection", "audited-cli"]
    assert main(["-v", "ingest", "--input", str(corpus), *cli_store, "--json", "--no-progress", "--checkpoint", str(tmp_path / "cli.ckpt")]) == 0
    assert main(["-v", "search", *cli_store, "-q", "cells", "--json"]) == 0
    monkeypatch.setenv("QDRANT_API_KEY", "wrong-key-123")
    assert main(["search", *cli_store, "-q", "cells"]) == 2
    out = capsys.readouterr()
    assert "refused the API key" in out.err

    assert checkpoint.exists()
    assert KEY not in caplog.text and KEY not in out.out and KEY not in out.err
    assert not _files_containing(tmp_path, KEY)
    assert keyed_server.run_dir is not None and not _files_containing(keyed_server.run_dir, KEY)  # config.yaml, server.log

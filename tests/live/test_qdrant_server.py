"""The native Qdrant server runner: the binary decompressed once into the cache, free ports, restart on the
same storage, the CLI's start/stop, and the version pinned everywhere (binary, testcontainers, compose)."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from splade_connectors.cli import main
from splade_connectors.live.qdrant_server import (
    QdrantBinaryNotFound,
    QdrantServer,
    ensure_binary,
    find_binary_source,
    sha256_of,
)
from tests.conftest import REPO_ROOT
from tests.live_stores import QDRANT_IMAGE, QDRANT_VERSION, LiveStore

pytestmark = pytest.mark.live


def _get(url: str, key: str | None = None) -> int:
    """The HTTP status of a GET."""
    request = urllib.request.Request(url, headers={"api-key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_archive_is_decompressed_once_into_the_cache_keyed_by_its_sha256(qdrant_binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = find_binary_source()
    if archive.suffix != ".xz":
        pytest.skip(f"{archive} is a plain binary, nothing to decompress")
    monkeypatch.setenv("SPLADE_CONNECTORS_CACHE", str(tmp_path))
    binary = ensure_binary(archive)
    assert binary == tmp_path / "qdrant" / sha256_of(archive) / "qdrant" and os.access(binary, os.X_OK)
    stamp = binary.stat().st_mtime_ns
    assert ensure_binary(archive) == binary and binary.stat().st_mtime_ns == stamp  # reused, not rewritten
    assert sha256_of(binary) == sha256_of(Path(qdrant_binary))


def test_missing_binary_names_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QDRANT_BINARY", str(tmp_path / "nothing-here"))
    with pytest.raises(QdrantBinaryNotFound, match="nothing-here"):
        ensure_binary(tmp_path / "nothing-here" / "qdrant.xz")


def test_server_starts_on_free_ports_and_restarts_on_the_same_storage(qdrant_binary: str) -> None:
    from splade_connectors.qdrant import QdrantConfig, QdrantStore
    from splade_connectors.records import Document, EncodedDocument
    from trainer.sparse import SparseVector

    with QdrantServer(qdrant_binary) as server, QdrantServer(qdrant_binary) as other:
        assert server.url != other.url and server.grpc_port != other.grpc_port
        assert _get(server.url + "/readyz") == 200 and server.version == QDRANT_VERSION
        config = QdrantConfig(url=server.url, grpc_port=server.grpc_port, collection="kept")
        with QdrantStore(config) as store:
            store.upsert([EncodedDocument(document=Document(id="a", text="x"), sparse=SparseVector.from_pairs({1: 1.0}))])
        url, storage, pid = server.url, server.storage_dir, server.pid
        server.kill()
        assert not server.running
        server.start()
        assert (server.url, server.storage_dir) == (url, storage) and server.pid != pid
        with QdrantStore(config).open(create=False) as store:
            assert store.count() == 1
        run_dir = server.run_dir
    assert run_dir is not None and not run_dir.exists()  # stop() removes the run folder and the temporary storage


def test_cli_start_and_stop_with_a_pidfile_and_an_api_key(qdrant_binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MY_QDRANT_KEY", "cli-secret-key-42")
    pidfile = tmp_path / "qdrant.json"
    assert main(["qdrant-server", "start", "--binary", qdrant_binary, "--pidfile", str(pidfile), "--api-key-env", "MY_QDRANT_KEY"]) == 0
    state = json.loads(pidfile.read_text())
    try:
        assert "cli-secret-key-42" not in pidfile.read_text() + capsys.readouterr().out
        assert _get(state["url"] + "/collections") == 401
        assert _get(state["url"] + "/collections", "cli-secret-key-42") == 200
        assert not list(Path(state["run_dir"]).rglob("*.yaml")) or "cli-secret-key-42" not in (Path(state["run_dir"]) / "config.yaml").read_text()
    finally:
        assert main(["qdrant-server", "stop", "--pidfile", str(pidfile)]) == 0
    assert not pidfile.exists() and not Path(state["run_dir"]).exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(state["url"] + "/readyz", timeout=2)


def test_every_pin_names_the_same_qdrant_version(qdrant_server_store: LiveStore) -> None:
    assert QDRANT_IMAGE == f"qdrant/qdrant:v{QDRANT_VERSION}"
    compose = (REPO_ROOT / "docker-compose.test.yml").read_text(encoding="utf-8")
    assert re.findall(r"image:\s*qdrant/qdrant:v(\S+)", compose) == [QDRANT_VERSION]
    assert qdrant_server_store.version == QDRANT_VERSION  # the server this session runs on

"""Kill -9 a dedicated OpenSearch mid-ingestion, restart it on the same data, resume from the checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from splade_connectors.ingest import IngestConfig, IngestError, RetryPolicy, ingest
from splade_connectors.opensearch import OpenSearchConfig, OpenSearchStore
from splade_connectors.opensearch.index import get_refresh_interval
from splade_connectors.records import EncodedDocument

pytestmark = pytest.mark.live

native = pytest.importorskip("splade_connectors.live.opensearch_native")

INDEX = "splade-crash"
DOCS, BATCH, KILL_AFTER = 300, 30, 4


class KillAfterBatches:
    """Delegating store that kill -9s the server's JVM before writing batch `after + 1`."""

    def __init__(self, store: OpenSearchStore, server: Any, after: int) -> None:
        self.store, self.server, self.after, self.calls, self.killed = store, server, after, 0, False

    def upsert(self, batch: Sequence[EncodedDocument]) -> None:
        self.calls += 1
        if self.calls == self.after + 1 and not self.killed:
            os.killpg(self.server.pid, signal.SIGKILL)  # the group led by the JVM launcher we started
            _wait_port_closed(self.server.url)
            self.killed = True
        self.store.upsert(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _wait_port_closed(url: str, timeout: float = 30.0) -> None:
    """Until nothing listens on the server's HTTP port any more (the JVM is dead)."""
    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((parts.hostname or "127.0.0.1", parts.port or 9200)) != 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} still answers after kill -9")


@pytest.fixture
def server_data_dir() -> Iterator[Path]:
    """A data dir that outlives one server run (owned by the user the JVM runs as)."""
    base = Path(tempfile.mkdtemp(prefix="splade-crash-"))
    base.chmod(0o755)
    data = base / "data"
    data.mkdir()
    user = native.run_as_user()
    if user is not None:
        os.chown(data, user.pw_uid, user.pw_gid)
    yield data
    shutil.rmtree(base, ignore_errors=True)


def _server(data: Path, version: str) -> Any:
    server = native.NativeOpenSearch(version, extra_settings={"path.data": str(data)})
    try:
        server.start()
    except Exception as exc:
        pytest.skip(f"no dedicated native OpenSearch: {exc}")
    return server


def _store(server: Any, vocabulary: list[str]) -> OpenSearchStore:
    config = OpenSearchConfig(hosts=[server.url], index=INDEX, replicas=0, timeout=10, max_retries=1)
    return OpenSearchStore(config, vocabulary=vocabulary).open()


def test_kill_restart_resume(
    server_data_dir: Path, vocabulary: list[str], os_scifact: Any, cached_encoder: Any, tmp_path: Path
) -> None:
    if os.environ.get("SPLADE_CONNECTORS_NATIVE_OPENSEARCH", "1").lower() in {"0", "false", "no", "off"}:
        pytest.skip("native OpenSearch disabled")
    from tests.live_stores import OPENSEARCH_VERSION

    corpus = os_scifact.slice.corpus[:DOCS]
    checkpoint = tmp_path / "ingest.ckpt"
    config = IngestConfig(batch_size=BATCH, checkpoint=checkpoint, retry=RetryPolicy(attempts=2, initial_wait=0.05, max_wait=0.1))
    server = _server(server_data_dir, OPENSEARCH_VERSION)
    try:
        killer = KillAfterBatches(_store(server, vocabulary), server, KILL_AFTER)
        with pytest.raises(IngestError):
            ingest(corpus, cached_encoder, killer, config)
        assert killer.killed
    finally:
        server.stop()  # the JVM is already gone: this removes the run dir, not our data dir
    done = int(json.loads(checkpoint.read_text())["records_done"])
    assert done == KILL_AFTER * BATCH

    server = _server(server_data_dir, OPENSEARCH_VERSION)  # same data, new port
    try:
        store = _store(server, vocabulary)
        store.client.cluster.health(index=INDEX, wait_for_status="green", request_timeout=70)
        store.refresh()
        assert store.count() >= done  # every acknowledged batch survived kill -9 (translog)
        report = ingest(corpus, cached_encoder, store, config)
        assert report.skipped_by_resume == done and report.accepted == DOCS - done
        assert store.count() == DOCS
        dupes = store.client.search(index=INDEX, body={
            "size": 0, "aggs": {"d": {"terms": {"field": "doc_id", "min_doc_count": 2, "size": 10}}}})
        assert dupes["aggregations"]["d"]["buckets"] == []
        assert set(store.fetch_vectors([d["_id"] for d in corpus])) == {d["_id"] for d in corpus}
        assert get_refresh_interval(store.client, INDEX) == "1s"  # the -1 left by the crash is undone
        assert not checkpoint.exists()
    finally:
        server.stop()

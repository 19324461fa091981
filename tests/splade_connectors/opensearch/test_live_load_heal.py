"""An ingestion killed mid-way never leaves acknowledged documents invisible (issue 26).

A CLI ingestion into the live OpenSearch is stopped by SIGTERM (handled like Ctrl-C: settings restored,
exit 143) or SIGKILL (nothing runs: the index stays in bulk-load settings, refresh off). Either way the next
`search` shows every document the checkpoint says was acknowledged, and the index's settings are back. A
live concurrent ingestion (its lease held by a running process) is only refreshed, never restored.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from splade_connectors.cli import main
from splade_connectors.opensearch import OpenSearchStore
from splade_connectors.opensearch.config import connect
from splade_connectors.opensearch.index import get_index_settings, read_meta, write_meta
from splade_connectors.opensearch.load_lease import LEASE_KEY
from splade_connectors.records import Document, EncodedDocument
from tests.splade_connectors.cli.conftest import CliRun, cli_env
from tests.splade_connectors.opensearch.conftest import live_config
from trainer.encoder import SpladeEncoder

pytestmark = pytest.mark.live

DOCS, BATCH, KILL_AFTER = 600, 8, 16  # records acknowledged before the signal: at least KILL_AFTER
CHARS = 300  # SciFact abstracts cut short: encoding stays cheap, texts stay distinct


@pytest.fixture
def index(opensearch_store: Any, vocabulary: list[str]) -> Iterator[str]:
    name = f"splade-heal-{uuid.uuid4().hex[:8]}"
    yield name
    with OpenSearchStore(live_config(opensearch_store, name, replicas=1), vocabulary=vocabulary).open() as store:  # the CLI made it with the default layout
        store.drop()


def _corpus(scifact_dir: Path, folder: Path) -> tuple[Path, dict[str, str]]:
    with open(scifact_dir / "corpus.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(next(handle)) for _ in range(DOCS)]
    texts = {row["_id"]: row["text"][:CHARS] for row in rows}
    path = folder / "corpus.jsonl"
    path.write_text("".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in texts.items()), encoding="utf-8")
    return path, texts


def _checkpoint(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None  # not written yet, or being replaced


def _raw(client: Any, index: str) -> tuple[int, str | None]:
    """`_count` and refresh_interval read with a bare client (no store open, so no healing)."""
    count = int(client.count(index=index)["count"])
    return count, get_index_settings(client, index, "index.refresh_interval").get("index.refresh_interval")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> CliRun:
    """`splade-connectors ARGS...` in this process (the log level it sets is put back)."""
    capsys.readouterr()
    level = logging.getLogger().level
    try:
        code = main(list(args))
    finally:
        logging.getLogger().setLevel(level)
    captured = capsys.readouterr()
    return CliRun(code, captured.out, captured.err)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_a_signalled_ingestion_leaves_every_acknowledged_document_searchable(
    sig: signal.Signals, opensearch_store: Any, scifact_dir: Path, index: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    corpus, texts = _corpus(scifact_dir, tmp_path)
    checkpoint = tmp_path / "resume.json"
    store_args = ["--store", "opensearch", "--opensearch-url", opensearch_store.url, "--index", index]
    proc = subprocess.Popen(
        [sys.executable, "-m", "splade_connectors.cli", "ingest", "--input", str(corpus), *store_args,
         "--checkpoint", str(checkpoint), "--ingest-batch-size", str(BATCH), "--no-progress"],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 600
        while ((_checkpoint(checkpoint) or {}).get("records_done", 0) < KILL_AFTER) and proc.poll() is None:
            assert time.monotonic() < deadline, "the ingestion made no progress"
            time.sleep(0.05)
        assert proc.poll() is None, f"the ingestion ended before the signal: {proc.communicate()[1][-2000:]}"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
        assert err.strip().splitlines()[-1] == "error: terminated"
    else:
        assert proc.returncode == -signal.SIGKILL
    state = _checkpoint(checkpoint)
    assert state is not None and state["written"] >= KILL_AFTER and state["probe_ids"]
    acknowledged = int(state["written"])

    client = connect(live_config(opensearch_store, index))
    if sig == signal.SIGKILL:  # the fault is real: nothing restored the settings
        assert _raw(client, index)[1] == "-1"
        assert LEASE_KEY in read_meta(client, index)

    probes = list(state["probe_ids"])[:3]
    queries = [arg for pid in probes for arg in ("-q", texts[pid])]
    run = cli(capsys, "search", *store_args, *queries, "--top-k", "10", "--json")  # in this process: no second model load
    assert run.code == 0, run.err
    results = json.loads(run.out)["results"]
    for pid, result in zip(probes, results):
        assert pid in [h["id"] for h in result["hits"]], f"acknowledged document {pid} is not found"

    count, refresh = _raw(client, index)  # as the search left it
    assert count >= acknowledged  # every acknowledged document is counted (a batch in flight may add more)
    assert refresh != "-1" and LEASE_KEY not in read_meta(client, index)
    client.close()


def _doc(doc_id: str, encoder: SpladeEncoder, text: str) -> EncodedDocument:
    (vector,) = encoder.encode_documents([text])
    return EncodedDocument(document=Document(id=doc_id, text=text), sparse=vector)


def test_a_live_ingestion_is_refreshed_not_restored_and_healed_once_dead(
    make_store: Callable[..., OpenSearchStore], encoder: SpladeEncoder
) -> None:
    """A lease held by a running process on this host: opens refresh only; once it is dead, an open restores."""
    store = make_store("lease")
    store.begin_ingest()
    store.upsert([_doc("d1", encoder, "Cornelius was a centurion in the book of Acts.")])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        meta = read_meta(store.client, store.name)  # hand the lease over to the other (live) process
        entry = {"host": socket.gethostname(), "pid": sleeper.pid, "heartbeat": time.time()}
        meta[LEASE_KEY] = {**meta[LEASE_KEY], "holders": {f"{socket.gethostname()}:{sleeper.pid}": entry}}
        write_meta(store.client, store.name, meta)
        store._stop_heartbeat()
        other = OpenSearchStore(store.config, vocabulary=store.vocabulary).open()
        try:
            assert other.count() == 1  # refreshed before the first read: counted...
            assert _raw(other.client, store.name) == (1, "-1")  # ...and its load settings kept
            assert LEASE_KEY in read_meta(other.client, store.name)
        finally:
            other.close()
    finally:
        sleeper.kill()
        sleeper.wait()
    healed = OpenSearchStore(store.config, vocabulary=store.vocabulary).open()
    try:
        assert _raw(healed.client, store.name) == (1, store.config.refresh_interval)
        settings = get_index_settings(healed.client, store.name, "index.number_of_replicas")
        assert settings["index.number_of_replicas"] == str(store.config.replicas)
        assert LEASE_KEY not in read_meta(healed.client, store.name)
    finally:
        healed.close()
    store._restore = None


def test_a_lease_of_another_host_expires(make_store: Callable[..., OpenSearchStore], encoder: SpladeEncoder) -> None:
    """A holder on another machine is taken for alive until its heartbeat is older than the lease."""
    store = make_store("expire")
    store.begin_ingest()
    store.upsert([_doc("d1", encoder, "Tides are caused by the gravity of the moon.")])
    store._stop_heartbeat()
    meta = read_meta(store.client, store.name)
    elsewhere = {"host": "another-host.invalid", "pid": os.getpid(), "heartbeat": time.time()}
    meta[LEASE_KEY] = {**meta[LEASE_KEY], "holders": {"another-host.invalid:1": elsewhere}}
    write_meta(store.client, store.name, meta)
    fresh = OpenSearchStore(store.config, vocabulary=store.vocabulary).open()
    assert [h.id for h in fresh.search_batch([_doc("q", encoder, "moon tides").sparse], top_k=3)[0]] == ["d1"]
    assert _raw(fresh.client, store.name) == (1, "-1")
    fresh.close()
    expired = OpenSearchStore(store.config.model_copy(update={"load_lease_seconds": 0.001}), vocabulary=store.vocabulary)
    time.sleep(0.01)
    expired.open()
    assert _raw(expired.client, store.name) == (1, store.config.refresh_interval)
    expired.close()
    store._restore = None

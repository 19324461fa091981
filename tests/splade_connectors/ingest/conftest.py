"""Fixtures for the ingestion tests: real stores (Qdrant server, OpenSearch), short real documents.

Stores are made through the registry, as the CLI makes them, on uniquely named collections that
are dropped afterwards. The Qdrant server is the session's (`qdrant_server_store`: `QDRANT_URL`,
testcontainers, else the native binary of `../shared/qdrant`).
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from splade_connectors.registry import build_store, store_config
from splade_connectors.store import SparseStore, StoreConfigBase
from tests.live_stores import LiveStore
from trainer.encoder import SpladeEncoder
from trainer.identity import EncoderIdentity

StoreFactory = Callable[..., SparseStore]


@pytest.fixture(scope="session")
def qdrant_url(qdrant_server_store: LiveStore) -> str:
    """The real Qdrant server of the session (QDRANT_URL, testcontainers or the native binary)."""
    warnings.filterwarnings("ignore", message=".*incompatible with server version.*")
    return qdrant_server_store.url  # type: ignore[return-value]  # a server store always has a URL


@pytest.fixture(scope="session")
def vocabulary(encoder: SpladeEncoder) -> list[str]:
    return encoder.model.id_to_token()


def store_config_for(kind: str, live: Any, name: str) -> StoreConfigBase:
    """A registry config for a live store: `live` is the Qdrant URL or the OpenSearch `LiveStore`."""
    if kind == "qdrant":
        return store_config("qdrant", url=live, api_key=os.environ.get("QDRANT_API_KEY") or None, collection=name)
    assert isinstance(live, LiveStore)
    return store_config(
        "opensearch", hosts=[live.url], username=live.username, password=live.password,
        verify_certs=live.verify_certs, index=name, replicas=0,
    )


@pytest.fixture(params=["qdrant", "opensearch"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def live_target(store_kind: str, request: pytest.FixtureRequest) -> Any:
    """The Qdrant server URL or the OpenSearch `LiveStore` for `store_kind`."""
    return request.getfixturevalue("qdrant_url" if store_kind == "qdrant" else "opensearch_store")


@pytest.fixture
def make_config(store_kind: str, live_target: Any, vocabulary: list[str]) -> Iterator[Callable[[str], StoreConfigBase]]:
    """Configs on fresh, uniquely named collections/indices of the live store; all dropped afterwards."""
    made: list[StoreConfigBase] = []

    def make(prefix: str = "t") -> StoreConfigBase:
        config = store_config_for(store_kind, live_target, f"ingest-{prefix}-{uuid.uuid4().hex[:8]}")
        made.append(config)
        return config

    yield make
    for config in made:
        store = build_store(config, vocabulary=vocabulary)
        try:
            store.open(create=True)
            store.drop()
        except Exception:  # best-effort cleanup of a test collection
            pass
        finally:
            store.close()


@pytest.fixture
def make_store(make_config: Callable[[str], StoreConfigBase], vocabulary: list[str]) -> Iterator[StoreFactory]:
    """Opened stores on fresh collections (closed afterwards; `make_config` drops them)."""
    opened: list[SparseStore] = []

    def make(prefix: str = "t", config: StoreConfigBase | None = None) -> SparseStore:
        store = build_store(config or make_config(prefix), vocabulary=vocabulary)
        store.open(create=True)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture(scope="session")
def short_docs(scifact_dir: Path) -> list[dict[str, Any]]:
    """600 real, short SciFact records (title as text): quick to encode, so pipeline tests stay fast."""
    docs: list[dict[str, Any]] = []
    with open(scifact_dir / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row.get("title"):
                docs.append({"_id": row["_id"], "text": row["title"], "year": 2000 + len(docs) % 20})
            if len(docs) == 600:
                break
    return docs


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """Rows as JSONL (dicts dumped; bytes and str written as they are)."""
    with open(path, "wb") as handle:
        for row in rows:
            if isinstance(row, bytes):
                handle.write(row + b"\n")
            elif isinstance(row, str):
                handle.write(row.encode("utf-8", "surrogatepass") + b"\n")
            else:
                handle.write(json.dumps(row).encode() + b"\n")
    return path


class InterruptedStore:
    """A real store whose `upsert` fails for good after `after` successful calls (a crash mid-run)."""

    def __init__(self, inner: SparseStore, after: int) -> None:
        self.inner, self.after, self.calls = inner, after, 0

    def upsert(self, batch: Any) -> None:
        self.calls += 1
        if self.calls > self.after:
            from splade_connectors.errors import StoreError

            raise StoreError(f"{self.inner.describe()}: connection reset (injected crash)")
        self.inner.upsert(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CountingEncoder:
    """The real encoder, remembering which texts it was asked to encode."""

    def __init__(self, encoder: SpladeEncoder) -> None:
        self.inner = encoder
        self.texts: list[str] = []
        self.model = encoder.model

    @property
    def stats(self) -> Any:
        return self.inner.stats

    def identity(self) -> EncoderIdentity:
        return self.inner.identity()

    def encode_documents(self, texts: list[str], **overrides: object) -> Any:
        self.texts.extend(texts)
        return self.inner.encode_documents(texts, **overrides)


_RAY_MARKERS = ("raylet", "gcs_server", "/ray/_private/", "/ray/dashboard/", "/ray/autoscaler/", "default_worker.py")


def ray_processes() -> list[Any]:
    """Ray processes started by this test process (its descendants), alive and not zombies."""
    import psutil

    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            command = " ".join(process.cmdline())
            if process.status() != psutil.STATUS_ZOMBIE and (command.startswith("ray::") or any(m in command for m in _RAY_MARKERS)):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    """A local Ray instance for the session (2 CPUs, 200 MB object store), stopped afterwards with
    every process it started; teardown fails if one is left behind."""
    ray = pytest.importorskip("ray")
    import time

    ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        deadline = time.monotonic() + 30
        while ray_processes() and time.monotonic() < deadline:
            time.sleep(0.5)
        left = ray_processes()
        assert not left, f"Ray processes left behind: {[p.pid for p in left]}"

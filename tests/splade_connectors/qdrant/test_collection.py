"""Creating and reopening collections on every backend: a mismatching configuration is refused and named,
declared payload indexes exist, bad names are refused with the store's own reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from splade_connectors.errors import NotFoundError, StoreError, StoreLockedError
from splade_connectors.qdrant import QdrantConfig, QdrantStore
from splade_connectors.store import ConfigMismatchError
from tests.splade_connectors.qdrant.conftest import QdrantTarget

pytestmark = pytest.mark.live


def test_reopening_with_the_same_config_works(qdrant_target: QdrantTarget) -> None:
    config = qdrant_target.config("same", idf=True, dense_name="dense", dense_size=8, datatype="float16")
    first = qdrant_target.store(config)
    assert first.created
    first.close()  # the embedded engine locks a collection while a store has it open
    again = qdrant_target.store(config, create=False)
    assert not again.created and again.count() == 0
    # datatype / on-disk left unset: any existing value is accepted when opening
    again.close()
    assert not qdrant_target.store(config.model_copy(update={"datatype": None, "on_disk": None})).created


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sparse_name": "other"}, "no sparse vector named 'other'"),
        ({"idf": True}, "IDF modifier is off"),
        ({"dense_size": 16}, "has size 8, config asks for 16"),
        ({"dense_distance": "Dot"}, "uses Cosine distance, config asks for Dot"),
        ({"dense_name": "embedding"}, "no dense vector named 'embedding'"),
        ({"datatype": "uint8"}, "sparse datatype is float32, config asks for uint8"),
        ({"on_disk": True}, "sparse index is in RAM, config asks for on disk"),
    ],
)
def test_mismatch_is_refused_with_the_difference(qdrant_target: QdrantTarget, change: dict[str, object], message: str) -> None:
    config = qdrant_target.config("mismatch", dense_name="dense", dense_size=8)
    qdrant_target.store(config).close()
    with pytest.raises(ConfigMismatchError, match=message) as caught:
        qdrant_target.build(config.model_copy(update=change)).open()
    assert config.collection in str(caught.value) and "does not match the config" in str(caught.value)


def test_drop_removes_the_collection(qdrant_target: QdrantTarget) -> None:
    store = qdrant_target.new_store("drop")
    store.drop()
    store.close()
    with pytest.raises(NotFoundError, match=store.name):
        qdrant_target.build(store.config).open(create=False)


def test_declared_payload_indexes_exist(qdrant_target: QdrantTarget) -> None:
    """doc_id (keyword) always, plus the configured fields; local mode keeps none (it has no payload index)."""
    config = qdrant_target.config("indexes", payload_indexes={"topic": "keyword", "year": "integer"})
    store = qdrant_target.store(config)
    if qdrant_target.backend == "local":
        assert store.client.get_collection(store.name).payload_schema == {}
        return
    if qdrant_target.backend == "server":
        schema = {k: v.data_type.value for k, v in store.client.get_collection(store.name).payload_schema.items()}
    else:
        schema = {k: str(v.data_type).rsplit(".", 1)[-1].lower() for k, v in store.engine.shard.info().payload_schema.items()}  # type: ignore[attr-defined]  # an embedded store: its engine has the shard
    assert schema == {"doc_id": "keyword", "metadata.topic": "keyword", "metadata.year": "integer"}


def test_invalid_collection_name_is_refused_with_the_reason(qdrant_target: QdrantTarget) -> None:
    """The server's own validation (HTTP 422), local mode's and the embedded engine's folder check say the same."""
    config = qdrant_target.config("x").model_copy(update={"collection": "bad/name"})
    with pytest.raises(StoreError, match=r"'bad/name'.*cannot contain .?/") as caught:
        qdrant_target.build(config).open()
    assert not caught.value.transient
    assert config.location() in str(caught.value)


def test_embedded_collection_is_locked_while_open(tmp_path: Path) -> None:
    """Embedded engine only: one open store per collection folder (a server serves any number of clients)."""
    config = QdrantConfig(path=str(tmp_path), collection="locked")
    with QdrantStore(config) as first:
        with pytest.raises(StoreLockedError, match=r"'locked'.*in use") as caught:
            QdrantStore(config).open()
        assert str(tmp_path) in str(caught.value)
        assert first.count() == 0
    with QdrantStore(config) as again:  # released on close
        assert again.count() == 0


def test_embedded_refuses_a_local_mode_folder(tmp_path: Path) -> None:
    """A folder written by qdrant-client local mode is not silently shadowed by a new, empty engine collection."""
    with QdrantStore(QdrantConfig(path=str(tmp_path), collection="old", local_mode=True)):
        pass
    with pytest.raises(ConfigMismatchError, match="local-mode collection"):
        QdrantStore(QdrantConfig(path=str(tmp_path), collection="old")).open()
    with QdrantStore(QdrantConfig(path=str(tmp_path), collection="old", local_mode=True), ) as store:
        assert store.count() == 0

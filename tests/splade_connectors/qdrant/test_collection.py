"""Creating and reopening collections: a mismatching configuration is refused and named."""

from __future__ import annotations

import pytest

from splade_connectors.qdrant import QdrantStore
from splade_connectors.store import ConfigMismatchError
from tests.splade_connectors.qdrant.conftest import QdrantTarget

pytestmark = pytest.mark.live


def test_reopening_with_the_same_config_works(qdrant_target: QdrantTarget) -> None:
    config = qdrant_target.config("same", idf=True, dense_name="dense", dense_size=8)
    assert qdrant_target.store(config).created
    assert not qdrant_target.store(config).created


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sparse_name": "other"}, "no sparse vector named 'other'"),
        ({"idf": True}, "IDF modifier is off"),
        ({"dense_size": 16}, "has size 8, config asks for 16"),
        ({"dense_distance": "Dot"}, "uses Cosine distance, config asks for Dot"),
        ({"dense_name": "embedding"}, "no dense vector named 'embedding'"),
    ],
)
def test_mismatch_is_refused_with_the_difference(qdrant_target: QdrantTarget, change: dict[str, object], message: str) -> None:
    config = qdrant_target.config("mismatch", dense_name="dense", dense_size=8)
    qdrant_target.store(config)
    with pytest.raises(ConfigMismatchError, match=message) as caught:
        QdrantStore(config.model_copy(update=change), client=qdrant_target.client).open()
    assert config.collection in str(caught.value)


def test_drop_removes_the_collection(qdrant_target: QdrantTarget) -> None:
    store = qdrant_target.new_store("drop")
    store.drop()
    assert not store.client.collection_exists(store.name)

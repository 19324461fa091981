"""Create the SPLADE collection, or open an existing one after checking it matches the config.

Opening a collection that was made differently (another sparse vector name, IDF on/off, another
dense size or distance) would silently give wrong scores or failing upserts, so it is refused with
a `ConfigMismatchError` that names every difference.
"""

from __future__ import annotations

import logging

from qdrant_client import QdrantClient, models

from splade_connectors.qdrant.config import QdrantConfig
from splade_connectors.errors import ConfigMismatchError, NotFoundError

logger = logging.getLogger(__name__)


def sparse_params(config: QdrantConfig) -> models.SparseVectorParams:
    return models.SparseVectorParams(
        index=models.SparseIndexParams(on_disk=config.on_disk),
        modifier=models.Modifier.IDF if config.idf else None,
    )


def dense_params(config: QdrantConfig) -> dict[str, models.VectorParams]:
    if config.dense_name is None or config.dense_size is None:
        return {}
    return {config.dense_name: models.VectorParams(size=config.dense_size, distance=models.Distance(config.dense_distance))}


def mismatches(info: models.CollectionInfo, config: QdrantConfig) -> list[str]:
    """Differences between an existing collection and the config (empty when they match)."""
    params = info.config.params
    problems: list[str] = []
    sparse = params.sparse_vectors or {}
    if config.sparse_name not in sparse:
        problems.append(f"no sparse vector named {config.sparse_name!r} (has {sorted(sparse) or 'none'})")
    else:
        has_idf = sparse[config.sparse_name].modifier == models.Modifier.IDF
        if has_idf != config.idf:
            problems.append(f"IDF modifier is {'on' if has_idf else 'off'}, config asks for {'on' if config.idf else 'off'}")
    if config.dense_name is not None:
        vectors = params.vectors if isinstance(params.vectors, dict) else {}
        existing = vectors.get(config.dense_name)
        if existing is None:
            problems.append(f"no dense vector named {config.dense_name!r} (has {sorted(vectors) or 'none'})")
        else:
            if existing.size != config.dense_size:
                problems.append(f"dense vector {config.dense_name!r} has size {existing.size}, config asks for {config.dense_size}")
            if existing.distance != models.Distance(config.dense_distance):
                problems.append(
                    f"dense vector {config.dense_name!r} uses {existing.distance.value} distance, "
                    f"config asks for {config.dense_distance}"
                )
    return problems


def ensure_collection(client: QdrantClient, config: QdrantConfig, *, create: bool = True) -> bool:
    """Create the collection if missing (returns True; `NotFoundError` unless `create`), or verify it (False)."""
    if client.collection_exists(config.collection):
        problems = mismatches(client.get_collection(config.collection), config)
        if problems:
            raise ConfigMismatchError(f"{config.describe()} does not match the config: " + "; ".join(problems))
        logger.debug("opened existing collection %r", config.collection)
        return False
    if not create:
        raise NotFoundError(f"{config.describe()} does not exist")
    client.create_collection(
        collection_name=config.collection,
        vectors_config=dense_params(config),
        sparse_vectors_config={config.sparse_name: sparse_params(config)},
    )
    logger.info("created %s", config.describe())
    return True

"""What a collection must look like for a config, and the differences from an existing one.

Opening a collection that was made differently (another sparse vector name, IDF on/off, another
dense size or distance, or another sparse datatype / on-disk setting, shard number, replication or
write consistency factor when the config names one)
would silently give other scores or failing upserts, so every engine refuses it with a
`ConfigMismatchError` that names each difference. Engines read the existing collection into a
`CollectionLayout` their own way; the comparison is the same for all.
"""

from __future__ import annotations

from splade_connectors.errors import ConfigMismatchError
from splade_connectors.qdrant.config import QdrantConfig
from splade_connectors.qdrant.engine import CollectionLayout, SparseSettings

CLUSTER_SETTINGS = ("shard_number", "replication_factor", "write_consistency_factor")


def wanted_sparse(config: QdrantConfig) -> SparseSettings:
    """The sparse vector settings a new collection gets."""
    return SparseSettings(idf=config.idf, datatype=config.datatype or "float32", on_disk=bool(config.on_disk))


def mismatches(existing: CollectionLayout, config: QdrantConfig) -> list[str]:
    """Differences between an existing collection and the config (empty when they match)."""
    problems: list[str] = []
    sparse = existing.sparse.get(config.sparse_name)
    if sparse is None:
        problems.append(f"no sparse vector named {config.sparse_name!r} (has {sorted(existing.sparse) or 'none'})")
    else:
        if sparse.idf != config.idf:
            problems.append(f"IDF modifier is {'on' if sparse.idf else 'off'}, config asks for {'on' if config.idf else 'off'}")
        if config.datatype is not None and sparse.datatype != config.datatype:
            problems.append(f"sparse datatype is {sparse.datatype}, config asks for {config.datatype}")
        if config.on_disk is not None and sparse.on_disk != config.on_disk:
            where = "on disk" if sparse.on_disk else "in RAM"
            problems.append(f"sparse index is {where}, config asks for {'on disk' if config.on_disk else 'in RAM'}")
    if config.dense_name is not None:
        existing_dense = existing.dense.get(config.dense_name)
        if existing_dense is None:
            problems.append(f"no dense vector named {config.dense_name!r} (has {sorted(existing.dense) or 'none'})")
        else:
            size, distance = existing_dense
            if size != config.dense_size:
                problems.append(f"dense vector {config.dense_name!r} has size {size}, config asks for {config.dense_size}")
            if distance.lower() != config.dense_distance.lower():
                problems.append(
                    f"dense vector {config.dense_name!r} uses {distance} distance, config asks for {config.dense_distance}"
                )
    for name in CLUSTER_SETTINGS:
        wanted, found = getattr(config, name), existing.cluster.get(name)
        if wanted is not None and found is not None and wanted != found:
            problems.append(f"{name} is {found}, config asks for {wanted}")
    return problems


def cluster_settings(config: QdrantConfig) -> dict[str, int]:
    """The shard and replication settings the config names (a new collection gets them; the rest are the server's defaults)."""
    return {name: value for name in CLUSTER_SETTINGS if (value := getattr(config, name)) is not None}


def check_layout(existing: CollectionLayout, config: QdrantConfig) -> None:
    """`ConfigMismatchError` naming every difference, if any."""
    problems = mismatches(existing, config)
    if problems:
        raise ConfigMismatchError(f"{config.describe()} does not match the config: " + "; ".join(problems))


def missing_indexes(existing: CollectionLayout, config: QdrantConfig) -> dict[str, str]:
    """Payload indexes the config declares that the collection does not have yet."""
    return {path: kind for path, kind in config.index_fields().items() if path not in existing.indexed_fields}


def check_name(config: QdrantConfig) -> str | None:
    """Why the collection name cannot be a folder of the embedded engine (None when it can)."""
    name = config.collection
    if "/" in name or "\\" in name or "\0" in name:
        return 'collection name cannot contain "/", "\\" or NUL'
    if name in (".", ".."):
        return f"collection name cannot be {name!r}"
    return None

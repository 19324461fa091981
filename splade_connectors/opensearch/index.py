"""Creating (or opening and checking) the SPLADE index, and its refresh-interval switch for bulk loads."""

from __future__ import annotations

import logging
from typing import Any

from splade_connectors.errors import ConfigMismatchError, NotFoundError
from splade_connectors.opensearch.config import OpenSearchConfig
from splade_connectors.opensearch.features import FeatureCodec

logger = logging.getLogger(__name__)

META_KEY = "splade_connectors"

# Strings longer than this are not indexed for exact matching (Lucene caps a term at 32,766 bytes).
EXACT_MAX_CHARS = 4096

# Where a top-level record field's exact value is indexed, for filters (`splade_connectors.filters`):
# `title` is analysed text for BM25 with a keyword sub-field; `content_hash` is mapped dynamically
# (text with the default `keyword` sub-field). `text` is analysed only: filters never match it whole.
EXACT_FIELDS = {"doc_id": "doc_id", "title": "title.exact", "content_hash": "content_hash.keyword"}


def index_mappings(config: OpenSearchConfig, codec: FeatureCodec) -> dict[str, Any]:
    """rank_features for SPLADE terms, BM25 `text`/`title`, keyword `doc_id`, free `metadata` object."""
    return {
        "_meta": {META_KEY: {"features": codec.scheme, "sparse_field": config.sparse_field}},
        # metadata strings are exact-match keywords, so simple {"field": value} filters are term queries
        "dynamic_templates": [
            {
                "metadata_strings": {
                    "path_match": "metadata.*",
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword", "ignore_above": EXACT_MAX_CHARS},
                }
            },
            # metadata floats as doubles (the default, float, refuses finite values past 3.4e38 that
            # the payload rule and every other store accept)
            {"metadata_floats": {"path_match": "metadata.*", "match_mapping_type": "double", "mapping": {"type": "double"}}},
        ],
        "properties": {
            config.sparse_field: {"type": "rank_features"},
            "doc_id": {"type": "keyword"},
            "text": {"type": "text"},
            "title": {"type": "text", "fields": {"exact": {"type": "keyword", "ignore_above": EXACT_MAX_CHARS}}},
            "metadata": {"type": "object", "dynamic": True},
        },
    }


def index_body(config: OpenSearchConfig, codec: FeatureCodec) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "number_of_shards": config.shards,
        "number_of_replicas": config.replicas,
        "refresh_interval": config.refresh_interval,
    }
    if config.codec != "default":
        settings["codec"] = config.codec
    return {"settings": {"index": settings}, "mappings": index_mappings(config, codec)}


def check_mapping(existing: dict[str, Any], config: OpenSearchConfig, codec: FeatureCodec) -> None:
    """Raise `ConfigMismatchError` naming every field or setting that differs from what is needed."""
    expected = index_mappings(config, codec)
    problems: list[str] = []
    props = existing.get("properties", {})
    for field, spec in expected["properties"].items():
        have = props.get(field)
        if have is None:
            problems.append(f"field {field!r} is missing")
            continue
        want_type, have_type = spec["type"], have.get("type", "object" if "properties" in have else None)
        if want_type != have_type:
            problems.append(f"field {field!r} is {have_type!r}, expected {want_type!r}")
    if "title" in props and "exact" not in props["title"].get("fields", {}):
        logger.warning(
            "%s was created without the title.exact field: a filter on title matches no document until the index is re-created",
            config.describe(),
        )
    meta = existing.get("_meta", {}).get(META_KEY)
    if meta is None:
        problems.append("no splade_connectors _meta (index was not created by this adapter)")
    elif meta.get("features") != codec.scheme:
        problems.append(f"feature naming {meta.get('features')!r} differs from {codec.scheme!r} (other vocabulary?)")
    if problems:
        raise ConfigMismatchError(f"{config.describe()} exists with another mapping: " + "; ".join(problems))


def ensure_index(client: Any, config: OpenSearchConfig, codec: FeatureCodec, *, create: bool = True) -> bool:
    """Create the index if missing (True; `NotFoundError` unless `create`), else check its mapping (False)."""
    from opensearchpy import RequestError

    if not client.indices.exists(index=config.index):
        if not create:
            raise NotFoundError(f"{config.describe()} does not exist")
        wait = {} if config.wait_for_active_shards is None else {"params": {"wait_for_active_shards": config.wait_for_active_shards}}
        try:
            client.indices.create(index=config.index, body=index_body(config, codec), **wait)
            logger.info("created index %s", config.index)
            return True
        except RequestError as exc:
            if "resource_already_exists_exception" not in str(exc):
                raise
    mapping = client.indices.get_mapping(index=config.index)
    if len(mapping) != 1:  # an alias over several indices (reads would span them, settings could not be read)
        raise ConfigMismatchError(
            f"{config.describe()} is an alias of {len(mapping)} indices ({', '.join(sorted(mapping))}): point it at one index"
        )
    (body,) = mapping.values()
    check_mapping(body.get("mappings", {}), config, codec)
    check_layout(get_index_settings(client, config.index, "index.number_of_shards", "index.number_of_replicas"), config)
    return False


def read_meta(client: Any, index: str) -> dict[str, Any]:
    """The index's whole mapping `_meta` (empty when it has none): the encoding record and the load lease live there."""
    mapping = client.indices.get_mapping(index=index)
    (body,) = mapping.values()
    meta = (body.get("mappings") or {}).get("_meta")
    return dict(meta) if isinstance(meta, dict) else {}


def write_meta(client: Any, index: str, meta: dict[str, Any]) -> None:
    """Replace the index's `_meta` (a mapping update replaces it whole: read it, change one key, write it back)."""
    client.indices.put_mapping(index=index, body={"_meta": dict(meta)})


def read_encoding_meta(client: Any, index: str) -> dict[str, Any] | None:
    """The encoding record (`splade_connectors.stored_encoding`) in `_meta.splade_connectors.encoding`, or None."""
    record = (read_meta(client, index).get(META_KEY) or {}).get("encoding")
    return dict(record) if isinstance(record, dict) else None


def write_encoding_meta(client: Any, index: str, record: dict[str, Any]) -> None:
    """Set `_meta.splade_connectors.encoding`; a mapping update replaces the whole `_meta`, so the rest is written back."""
    meta = read_meta(client, index)
    ours = dict(meta.get(META_KEY) or {})
    ours["encoding"] = record
    write_meta(client, index, {**meta, META_KEY: ours})


def check_layout(current: dict[str, str], config: OpenSearchConfig) -> None:
    """`ConfigMismatchError` when the config names shards or replicas the existing index does not have.

    Only values the config names explicitly are checked (the defaults open any index). Shards are fixed
    at creation; replicas may also read `ingest_replicas` (an index in a bulk load, or one interrupted).
    """
    problems: list[str] = []
    named = config.model_fields_set
    shards = current.get("index.number_of_shards")
    if "shards" in named and shards is not None and shards != str(config.shards):
        problems.append(f"number_of_shards is {shards}, config asks for {config.shards}")
    replicas = current.get("index.number_of_replicas")
    if "replicas" in named and replicas is not None and replicas not in (str(config.replicas), str(config.ingest_replicas)):
        problems.append(f"number_of_replicas is {replicas}, config asks for {config.replicas}")
    if problems:
        raise ConfigMismatchError(f"{config.describe()} exists with another layout: " + "; ".join(problems))


def get_index_settings(client: Any, index: str, *names: str) -> dict[str, str]:
    """The index's explicit values of these settings (`index.refresh_interval`, ...); unset ones are left out."""
    settings = client.indices.get_settings(index=index, name=",".join(names), flat_settings=True)
    (body,) = settings.values()
    return {k: str(v) for k, v in body.get("settings", {}).items() if k in names}


def get_refresh_interval(client: Any, index: str) -> str | None:
    """The index's explicit refresh_interval, or None when it uses the server default."""
    return get_index_settings(client, index, "index.refresh_interval").get("index.refresh_interval")


def set_refresh_interval(client: Any, index: str, value: str | None) -> None:
    client.indices.put_settings(index=index, body={"index": {"refresh_interval": value}})


def bulk_load_settings(current: dict[str, str], config: OpenSearchConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings for a bulk load, settings to restore after it).

    During the load: no refresh and `ingest_replicas` (0: replicas are rebuilt once, by copying the
    finished segments, instead of indexing every document twice). A current value equal to the load
    value was left by an interrupted load: the configured value is restored instead.
    """
    load = {"refresh_interval": config.ingest_refresh_interval, "number_of_replicas": config.ingest_replicas}
    configured = {"refresh_interval": config.refresh_interval, "number_of_replicas": config.replicas}
    restore: dict[str, Any] = {}
    for key, value in load.items():
        have = current.get(f"index.{key}")
        restore[key] = have if have is not None and have != str(value) else configured[key]
    return load, restore


def thread_pool_sizes(client: Any) -> dict[str, int]:
    """Threads of the `write` and `search` pools summed over the cluster's data nodes (empty if unreadable)."""
    info = client.nodes.info(metric="thread_pool")
    sizes: dict[str, int] = {}
    for node in (info.get("nodes") or {}).values():
        roles = node.get("roles")
        if roles is not None and "data" not in roles:
            continue
        for pool in ("write", "search"):
            size = ((node.get("thread_pool") or {}).get(pool) or {}).get("size")
            if isinstance(size, int) and size > 0:
                sizes[pool] = sizes.get(pool, 0) + size
    return sizes

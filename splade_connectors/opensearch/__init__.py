"""OpenSearch adapter: rank_features ingestion, exact SPLADE queries, hybrid search with BM25.

Needs the `opensearch` extra (opensearch-py). Modules: `config` (settings, client), `features`
(reversible rank_features names), `index` (mapping), `queries` (query DSL), `store`
(`OpenSearchStore`), `hybrid` (BM25 + SPLADE fusion).
"""

from splade_connectors.opensearch.config import OpenSearchConfig, connect
from splade_connectors.opensearch.features import FeatureCodec, escape_token, unescape_name
from splade_connectors.opensearch.hybrid import HybridSearcher, linear_fuse, rrf_fuse
from splade_connectors.opensearch.queries import NativeFilter, TooManyTermsError
from splade_connectors.opensearch.store import (
    STORAGE_RELATIVE_ERROR,
    BulkItemsError,
    OpenSearchStore,
    TransientBulkItemsError,
)

__all__ = [
    "STORAGE_RELATIVE_ERROR",
    "BulkItemsError",
    "FeatureCodec",
    "HybridSearcher",
    "NativeFilter",
    "OpenSearchConfig",
    "OpenSearchStore",
    "TooManyTermsError",
    "TransientBulkItemsError",
    "connect",
    "escape_token",
    "linear_fuse",
    "rrf_fuse",
    "unescape_name",
]

"""OpenSearch adapter: rank_features ingestion, exact and two-phase SPLADE queries, hybrid search with BM25.

Needs the `opensearch` extra (opensearch-py). Modules: `config` (settings, client), `features`
(reversible rank_features names, compact weights), `index` (mapping, bulk-load settings), `bulk`
(byte-sized parallel `_bulk` writes), `queries` (query DSL, incl. two-phase rescore: `splade_connectors.two_phase`),
`msearch` (batched searches sized to the cluster), `store` (`OpenSearchStore`, incl. hybrid BM25 +
SPLADE), `errors` (opensearch-py errors -> project errors).
"""

from splade_connectors.opensearch.config import OpenSearchConfig, connect
from splade_connectors.opensearch.errors import translate
from splade_connectors.opensearch.features import FeatureCodec, escape_token, unescape_name
from splade_connectors.opensearch.queries import NativeFilter, TooManyTermsError
from splade_connectors.opensearch.store import STORAGE_RELATIVE_ERROR, OpenSearchStore
from splade_connectors.two_phase import TwoPhase

__all__ = [
    "STORAGE_RELATIVE_ERROR",
    "FeatureCodec",
    "NativeFilter",
    "OpenSearchConfig",
    "OpenSearchStore",
    "TooManyTermsError",
    "TwoPhase",
    "connect",
    "escape_token",
    "translate",
    "unescape_name",
]

"""splade-connectors adapters: SPLADE vectors into Qdrant and OpenSearch, search, ingestion, evaluation.

The core (`trainer`) encodes; these modules move vectors into stores and measure retrieval through them.
Store adapters live in their own subpackages (`splade_connectors.qdrant`, `splade_connectors.opensearch`)
and are imported explicitly, so installing one store's client is enough.
"""

from splade_connectors.records import Document, EncodedDocument, Hit, TermContribution, point_id
from splade_connectors.store import ConfigMismatchError, SparseStore, StoreError, TransientStoreError
from trainer.sparse import SparseVector

__all__ = [
    "ConfigMismatchError",
    "Document",
    "EncodedDocument",
    "Hit",
    "SparseStore",
    "SparseVector",
    "StoreError",
    "TermContribution",
    "TransientStoreError",
    "point_id",
]

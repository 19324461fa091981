"""splade-connectors: SPLADE vectors into Qdrant and OpenSearch, search, ingestion, evaluation.

One front door for what a user needs to encode, ingest, search (sparse, hybrid, async) and evaluate:

    from splade_connectors import SpladeEncoder, open_store, store_config, ingest_file, search, HybridOptions

    encoder = SpladeEncoder.from_pretrained("naver/splade-v3")
    with open_store(store_config("qdrant", url="http://localhost:6333", collection="docs")) as store:
        ingest_file("corpus.jsonl", encoder, store)
        hits = search(store, encoder, ["vitamin D"], top_k=10)

Names are loaded on first use (a module `__getattr__`, as the core `trainer` does), so
`import splade_connectors` pays for neither torch nor a store's client library; `search` and
`ingest`, which are also the names of submodules, are bound at import (see below). Stores are built by
kind through the registry (`store_config`, `open_store`): the adapters (`splade_connectors.qdrant`,
`splade_connectors.opensearch`) are imported only for the kind asked for, so installing one store's
client is enough; their own classes (`QdrantStore`, `OpenSearchConfig`, ...) stay in their subpackages.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    # encode (the core)
    "EncodeOptions": "trainer.encoder",
    "SpladeEncoder": "trainer.encoder",
    "SparseVector": "trainer.sparse",
    "shipped_model_dir": "trainer.models",
    # records and the store contract
    "Document": "splade_connectors.records",
    "EncodedDocument": "splade_connectors.records",
    "Hit": "splade_connectors.records",
    "Passage": "splade_connectors.records",
    "TermContribution": "splade_connectors.records",
    "point_id": "splade_connectors.records",
    "AsyncSearchStore": "splade_connectors.store",
    "HybridQuery": "splade_connectors.store",
    "SparseStore": "splade_connectors.store",
    "StoreConfigBase": "splade_connectors.store",
    # stores by kind
    "STORE_KINDS": "splade_connectors.registry",
    "build_store": "splade_connectors.registry",
    "open_store": "splade_connectors.registry",
    "store_config": "splade_connectors.registry",
    # ingest
    "IngestConfig": "splade_connectors.ingest",
    "IngestReport": "splade_connectors.ingest",
    "RetryPolicy": "splade_connectors.ingest",
    "ingest": "splade_connectors.ingest",
    "ingest_file": "splade_connectors.ingest",
    # search
    "HybridOptions": "splade_connectors.search",
    "asearch": "splade_connectors.search",
    "search": "splade_connectors.search",
    # evaluate
    "EvaluationReport": "splade_connectors.eval",
    "evaluate": "splade_connectors.eval",
    "load_retrieval_dataset": "splade_connectors.eval",
    # errors
    "ConfigError": "splade_connectors.errors",
    "ConfigMismatchError": "splade_connectors.errors",
    "NotFoundError": "splade_connectors.errors",
    "SpladeError": "splade_connectors.errors",
    "StoreError": "splade_connectors.errors",
    "TransientStoreError": "splade_connectors.errors",
}

__all__ = sorted(_EXPORTS)

# `search` and `ingest` are also submodules. Importing a submodule (by anyone, at any time before the name is
# looked up) sets the package attribute of its name to the module, which a lazy `__getattr__` never overrides:
# `from splade_connectors import search` would then give the module. Binding the functions now (after their
# modules are loaded) keeps them: numpy, pydantic and tenacity, no torch and no store client. Their modules stay
# importable by full name (`from splade_connectors.search import HybridOptions`).
from splade_connectors.ingest import ingest as ingest  # noqa: E402 - after the table the lazy loader reads
from splade_connectors.search import search as search  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover - `X as X`: explicit re-exports for type checkers
    from splade_connectors.errors import (
        ConfigError as ConfigError,
        ConfigMismatchError as ConfigMismatchError,
        NotFoundError as NotFoundError,
        SpladeError as SpladeError,
        StoreError as StoreError,
        TransientStoreError as TransientStoreError,
    )
    from splade_connectors.eval import (
        EvaluationReport as EvaluationReport,
        evaluate as evaluate,
        load_retrieval_dataset as load_retrieval_dataset,
    )
    from splade_connectors.ingest import (
        IngestConfig as IngestConfig,
        IngestReport as IngestReport,
        RetryPolicy as RetryPolicy,
        ingest_file as ingest_file,
    )
    from splade_connectors.records import (
        Document as Document,
        EncodedDocument as EncodedDocument,
        Hit as Hit,
        Passage as Passage,
        TermContribution as TermContribution,
        point_id as point_id,
    )
    from splade_connectors.registry import (
        STORE_KINDS as STORE_KINDS,
        build_store as build_store,
        open_store as open_store,
        store_config as store_config,
    )
    from splade_connectors.search import HybridOptions as HybridOptions, asearch as asearch
    from splade_connectors.store import (
        AsyncSearchStore as AsyncSearchStore,
        HybridQuery as HybridQuery,
        SparseStore as SparseStore,
        StoreConfigBase as StoreConfigBase,
    )
    from trainer.encoder import EncodeOptions as EncodeOptions, SpladeEncoder as SpladeEncoder
    from trainer.models import shipped_model_dir as shipped_model_dir
    from trainer.sparse import SparseVector as SparseVector


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'splade_connectors' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""splade-connectors core: SPLADE model, fast encoder, sparse vectors and training.

The core never imports the store adapters (`splade_connectors`); they depend on it. Names are loaded
lazily, so `import trainer.sparse` does not pay for torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CheckpointError": "trainer.checkpoint",
    "PoolingConfig": "trainer.checkpoint",
    "EncodeOptions": "trainer.encoder",
    "EncodeStats": "trainer.encoder",
    "EncodingInputError": "trainer.encoder",
    "SpladeEncoder": "trainer.encoder",
    "SpladeModel": "trainer.model",
    "Pruning": "trainer.pruning",
    "SentenceTransformersEncoder": "trainer.st_encoder",
    "SparseStaticEmbedding": "trainer.static",
    "SparseVector": "trainer.sparse",
    "SparseVectorError": "trainer.sparse",
    "from_csr": "trainer.sparse",
    "from_torch": "trainer.sparse",
    "to_csr": "trainer.sparse",
    "to_torch_sparse": "trainer.sparse",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - `X as X`: explicit re-exports for type checkers
    from trainer.checkpoint import CheckpointError as CheckpointError, PoolingConfig as PoolingConfig
    from trainer.encoder import (
        EncodeOptions as EncodeOptions,
        EncodeStats as EncodeStats,
        EncodingInputError as EncodingInputError,
        SpladeEncoder as SpladeEncoder,
    )
    from trainer.model import SpladeModel as SpladeModel
    from trainer.pruning import Pruning as Pruning
    from trainer.sparse import (
        SparseVector as SparseVector,
        SparseVectorError as SparseVectorError,
        from_csr as from_csr,
        from_torch as from_torch,
        to_csr as to_csr,
        to_torch_sparse as to_torch_sparse,
    )
    from trainer.st_encoder import SentenceTransformersEncoder as SentenceTransformersEncoder
    from trainer.static import SparseStaticEmbedding as SparseStaticEmbedding


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trainer' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value

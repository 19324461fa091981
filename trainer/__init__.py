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
    "SparseStaticEmbedding": "trainer.static",
    "SparseVector": "trainer.sparse",
    "SparseVectorError": "trainer.sparse",
    "from_csr": "trainer.sparse",
    "from_torch": "trainer.sparse",
    "to_csr": "trainer.sparse",
    "to_torch_sparse": "trainer.sparse",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from trainer.checkpoint import CheckpointError, PoolingConfig
    from trainer.encoder import EncodeOptions, EncodeStats, EncodingInputError, SpladeEncoder
    from trainer.model import SpladeModel
    from trainer.pruning import Pruning
    from trainer.static import SparseStaticEmbedding
    from trainer.sparse import SparseVector, SparseVectorError, from_csr, from_torch, to_csr, to_torch_sparse


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trainer' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value

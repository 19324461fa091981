"""splade-connectors core: SPLADE model, fast encoder, sparse vectors and training.

The core never imports the store adapters (`splade_connectors`); they depend on it.
"""

from trainer.checkpoint import CheckpointError, PoolingConfig
from trainer.encoder import EncodeOptions, EncodeStats, EncodingInputError, SpladeEncoder
from trainer.model import SpladeModel
from trainer.sparse import SparseVector, SparseVectorError, from_csr, from_torch, to_csr, to_torch_sparse

__all__ = [
    "CheckpointError",
    "EncodeOptions",
    "EncodeStats",
    "EncodingInputError",
    "PoolingConfig",
    "SparseVector",
    "SparseVectorError",
    "SpladeEncoder",
    "SpladeModel",
    "from_csr",
    "from_torch",
    "to_csr",
    "to_torch_sparse",
]

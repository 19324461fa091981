"""Per-call encoding options (`EncodeOptions`): one module, so the encoder and its identity share them without a circle."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainer.pruning import Pruning


class EncodeOptions(BaseModel):
    """Per-call encoding options; defaults suit document ingestion on CPU."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: int = Field(32, ge=1)
    max_length: int | None = Field(None, ge=2, description="tokens, incl. special tokens; default: the model's")
    top_k: int | None = Field(None, ge=1, description="keep the k largest weights (max_active_dims)")
    min_weight: float = Field(0.0, ge=0.0, description="drop weights <= this")
    empty_text: Literal["empty", "error"] = "empty"
    window: int = Field(4096, ge=1, description="texts sorted by length together; bounds memory when streaming")
    prune: Pruning | None = Field(None, description="OpenSearch pruning rule applied to every vector (trainer.pruning)")
    chunk_tokens: int | None = Field(
        None, ge=3, description="split longer texts into windows of this many tokens (incl. special tokens), merged by max"
    )
    chunk_stride: int | None = Field(
        None, ge=1, description="text tokens between window starts; default: no overlap (needs chunk_tokens)"
    )

    @field_validator("prune", mode="before")
    @classmethod
    def _parse_prune(cls, value: object) -> object:
        """Accept `"RULE=VALUE"` text (as on the command line) besides a `Pruning`."""
        return Pruning.parse(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_chunking(self) -> EncodeOptions:
        if self.chunk_stride is not None and self.chunk_tokens is None:
            raise ValueError("chunk_stride needs chunk_tokens")
        return self

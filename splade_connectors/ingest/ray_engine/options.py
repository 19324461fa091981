"""What the Ray engine needs to know: how to rebuild the encoder on a worker, and how to spread the work."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from splade_connectors.encoding import SparseEncoder
from trainer.encoder import EncodeOptions

SHIPPED_PREFIX = "shipped:"


class EncoderSpec(BaseModel):
    """How each encoder actor loads its model: a checkpoint directory (or `shipped:NAME`) and options.

    The path must be readable on every node that runs an encoder actor (and on the driver, which
    loads the model once on CPU to fix the encoding identity and the vocabulary).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    backend: Literal["splade", "sentence-transformers"] = Field(
        "splade", description="who computes the vectors: this library's SpladeEncoder or sentence-transformers' SparseEncoder"
    )
    device: str | None = Field(None, description="cpu, cuda...; default: cuda when the actor has a GPU, else cpu")
    dtype: str | None = Field(None, description="fp32, bf16, fp16; default: bf16 on GPU, fp32 on CPU")
    options: EncodeOptions = Field(default_factory=EncodeOptions)

    def model_path(self) -> str:
        if self.model.startswith(SHIPPED_PREFIX):
            from trainer.models import shipped_model_dir

            return str(shipped_model_dir(self.model[len(SHIPPED_PREFIX):]))
        return self.model

    def actor_device(self, gpus_per_encoder: float) -> str:
        return "cuda" if gpus_per_encoder > 0 else (self.device or "cpu")

    def actor_dtype(self, gpus_per_encoder: float) -> str:
        """A definite dtype, so the driver knows the actors' encoding identity before they start."""
        if self.dtype is not None:
            return self.dtype
        return "bf16" if self.actor_device(gpus_per_encoder).startswith("cuda") else "fp32"

    def load(self, *, device: str, dtype: str) -> SparseEncoder:
        if self.backend == "sentence-transformers":
            from trainer.st_encoder import SentenceTransformersEncoder

            return SentenceTransformersEncoder.from_pretrained(self.model_path(), device=device, dtype=dtype, options=self.options)
        from trainer.encoder import SpladeEncoder

        return SpladeEncoder.from_pretrained(self.model_path(), device=device, dtype=dtype, options=self.options)


class RayOptions(BaseModel):
    """Where to run and how many of each worker; what scales with what is in docs/ray.md (multi-node, multi-GPU).

    CPUs are Ray's logical CPUs: `encoders * cpus_per_encoder` plus a little for reading,
    preparing and writing (`task_cpus` each) must fit the cluster, or actors wait forever.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str | None = Field(None, description="Ray cluster address ('auto', 'ray://host:10001'); None: the running Ray, else a local one")
    encoders: int = Field(1, ge=1, description="encoder actors (one model load each)")
    gpus_per_encoder: float | None = Field(None, ge=0, description="GPUs per encoder actor; 0 = CPU; None: 1 if the cluster has GPUs")
    cpus_per_encoder: float = Field(1.0, gt=0, description="logical CPUs per encoder actor (also its torch threads, rounded)")
    task_cpus: float = Field(0.25, gt=0, description="logical CPUs of each read task, prepare actor and write task")
    preparers: int = Field(1, ge=1, description="actors that validate, hash and look up stored hashes")
    writers: int | None = Field(None, ge=1, description="concurrent write tasks (default: no limit)")
    encode_batch_size: int | None = Field(
        None, ge=1, description="records per encoder call, by input position (default: the ingest batch size, as the single engine)"
    )
    groups_per_call: int = Field(4, ge=1, description="encoder calls per Ray batch of an encoder actor")
    shard_records: int | None = Field(
        None, ge=1, description="records per read block, rounded up to whole encoder calls (default: 16 calls)"
    )
    num_cpus: int | None = Field(None, ge=1, description="logical CPUs of a local instance started by the engine")
    object_store_memory: int | None = Field(None, ge=80 * 1024**2, description="bytes of object store for a local instance")
    show_progress: bool = False

"""The Ray engine: ingestion on Ray Data (needs the `[ray]` extra; `ray` is imported only when a job runs).

    from splade_connectors.ingest.ray_engine import EncoderSpec, RayOptions, ingest_file_ray
    report = ingest_file_ray("corpus.jsonl", EncoderSpec(model="/models/splade"),
                             store_config("qdrant", url="http://qdrant:6333", collection="docs"),
                             IngestConfig(skip_unchanged=True), RayOptions(address="auto", encoders=8, gpus_per_encoder=1))
"""

from __future__ import annotations

from splade_connectors.ingest.ray_engine.engine import ingest_file_ray
from splade_connectors.ingest.ray_engine.options import EncoderSpec, RayOptions

__all__ = ["EncoderSpec", "RayOptions", "ingest_file_ray"]

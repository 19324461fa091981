"""How to ingest: the options every engine (single process, Ray) shares."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from splade_connectors.ingest.sources import FieldMap
from splade_connectors.retry import RetryPolicy


class IngestConfig(BaseModel):
    """Batch size, bad-record policy, titles, retries, resume state and incremental re-ingestion.

    - `on_invalid`: "skip" reports a bad record (by position and id) and goes on; "fail" stops there.
      Bad means refused by validation, by the encoder, or by the store.
    - `checkpoint`: resume file of the single-process engine (see `checkpoint.py`).
    - `skip_unchanged`: documents whose stored content hash equals the new one are neither
      encoded nor written again.
    - `delete_missing`: after the run, delete stored documents whose id is not in the source.
    - `max_invalid_kept`: how many invalid records the report lists (all are counted).
    - `reencode`: when the collection holds vectors of another encoding (model, options; see
      `splade_connectors.stored_encoding`), drop it and ingest the input into a new one instead of
      refusing; the input must then hold every document the collection should keep.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: int = Field(64, ge=1)
    on_invalid: Literal["skip", "fail"] = "skip"
    with_title: bool = True
    fields: FieldMap = Field(default_factory=FieldMap)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    checkpoint: Path | None = None
    source_id: str = "iterable"
    skip_unchanged: bool = False
    delete_missing: bool = False
    max_invalid_kept: int = Field(1000, ge=0)
    reencode: bool = False
    passages: bool = False

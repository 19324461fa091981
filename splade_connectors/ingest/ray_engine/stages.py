"""The two map stages of the Ray pipeline: prepare (validate, hash, classify) and encode.

Both are callable classes run by Ray Data actor pools (state: a store connection, a loaded model)
on pyarrow batches. They use the same functions as the single-process engine (`parse_jsonl_line`,
`to_document`, `content_hash`, `classify`, `encode_isolating`), so records are judged the same way.
Rows carry their input position through every stage; a row is "encode" (to be encoded and
written), "unchanged" (same content hash as stored: skipped) or "invalid" (with a reason).
"""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

import pyarrow as pa

from splade_connectors.errors import IngestError
from splade_connectors.ingest.config import IngestConfig
from splade_connectors.ingest.identity import EncodingIdentity, content_hash, encoding_identity
from splade_connectors.ingest.incremental import classify
from splade_connectors.ingest.isolation import encode_isolating
from splade_connectors.ingest.ray_engine.options import EncoderSpec
from splade_connectors.ingest.sources import parse_jsonl_line
from splade_connectors.ingest.validate import InvalidRecord, to_document
from splade_connectors.records import Document
from splade_connectors.registry import build_store
from splade_connectors.store import StoreConfigBase

logger = logging.getLogger(__name__)

ENCODE, UNCHANGED, INVALID = "encode", "unchanged", "invalid"

PREPARED_SCHEMA = pa.schema([
    ("position", pa.int64()),
    ("doc_id", pa.string()),
    ("status", pa.string()),
    ("existed", pa.bool_()),
    ("reason", pa.string()),
    ("document", pa.string()),  # Document JSON (with its content hash), for "encode" rows
    ("text", pa.string()),  # the text to encode, for "encode" rows
])

ENCODED_SCHEMA = pa.schema([
    ("position", pa.int64()),
    ("doc_id", pa.string()),
    ("status", pa.string()),
    ("existed", pa.bool_()),
    ("reason", pa.string()),
    ("document", pa.string()),
    ("indices", pa.list_(pa.int32())),
    ("values", pa.list_(pa.float32())),
    ("truncated", pa.bool_()),
])


def fail_on(record: InvalidRecord, config: IngestConfig) -> None:
    """Under `on_invalid="fail"`, the first refused record stops the job."""
    if config.on_invalid == "fail":
        raise IngestError(f"invalid input, {record.describe()}")


class PrepareBatches:
    """Parse and validate raw rows, hash valid documents, and look up their stored hashes."""

    def __init__(
        self, store_config: StoreConfigBase, vocabulary: list[str], config: IngestConfig, identity_key: str
    ) -> None:
        self.config, self.identity_key = config, identity_key
        self.store = build_store(store_config, vocabulary=vocabulary).open(create=False)

    def __call__(self, batch: pa.Table) -> pa.Table:
        config = self.config
        positions = batch.column("position").to_pylist()
        raws = batch.column("raw").to_pylist()
        out: dict[str, list[Any]] = {name: [] for name in PREPARED_SCHEMA.names}
        valid: list[tuple[int, Document]] = []  # (row, document)
        seen: set[str] = set()
        for position, raw in zip(positions, raws):
            result = to_document(parse_jsonl_line(position, raw or b""), config.fields)
            if isinstance(result, Document) and result.id in seen:
                result = InvalidRecord(position=position, doc_id=result.id, reason="duplicate id in the same batch")
            row = len(out["position"])
            if isinstance(result, InvalidRecord):
                fail_on(result, config)
                _append(out, position=position, doc_id=result.doc_id, status=INVALID, reason=result.reason)
                continue
            seen.add(result.id)
            document = result.model_copy(update={"content_hash": content_hash(result, self.identity_key)})
            valid.append((row, document))
            _append(out, position=position, doc_id=document.id, status=ENCODE)
        if valid:
            statuses = classify(
                self.store, [d.id for _, d in valid], [d.content_hash or "" for _, d in valid],
                skip_unchanged=config.skip_unchanged, retry=config.retry,
            )
            for (row, document), status in zip(valid, statuses):
                out["existed"][row] = status != "new"
                if status == "unchanged":
                    out["status"][row] = UNCHANGED
                    continue
                out["document"][row] = document.model_dump_json()
                out["text"][row] = document.text_to_encode(config.with_title)
        return pa.table(out, schema=PREPARED_SCHEMA)

    def __del__(self) -> None:
        store = getattr(self, "store", None)
        if store is not None:
            store.close()


def _append(out: dict[str, list[Any]], **values: Any) -> None:
    for name in out:
        out[name].append(values.get(name, False if name == "existed" else None))


class EncodeBatches:
    """One model load per actor; encodes the "encode" rows, isolating texts the encoder refuses."""

    def __init__(self, spec: EncoderSpec, device: str, dtype: str, expected: EncodingIdentity, threads: int, config: IngestConfig) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.config = config
        self.encoder = spec.load(device=device, dtype=dtype)
        found = encoding_identity(self.encoder, with_title=expected.with_title)
        if found != expected:
            raise IngestError(
                f"encoder actor on {socket.gethostname()} loaded {spec.model} with another identity "
                f"(differs in: {', '.join(found.differences(expected))}): every node must have the same checkpoint"
            )

    def __call__(self, batch: pa.Table) -> pa.Table:
        statuses = batch.column("status").to_pylist()
        texts = batch.column("text").to_pylist()
        reasons = batch.column("reason").to_pylist()
        rows = [i for i, status in enumerate(statuses) if status == ENCODE]
        outcome = encode_isolating(self.encoder, [texts[i] for i in rows])
        indices: list[list[int] | None] = [None] * len(statuses)
        values: list[list[float] | None] = [None] * len(statuses)
        truncated = [False] * len(statuses)
        for j in outcome.truncated:
            truncated[rows[j]] = True
        for j, row in enumerate(rows):
            if j in outcome.refused:
                statuses[row], reasons[row] = INVALID, outcome.refused[j]
                fail_on(InvalidRecord(position=batch.column("position")[row].as_py(), doc_id=batch.column("doc_id")[row].as_py(), reason=reasons[row]), self.config)
                continue
            vector = outcome.vectors[j]
            assert vector is not None
            indices[row], values[row] = vector.indices.tolist(), vector.values.tolist()
        columns = {
            "position": batch.column("position"),
            "doc_id": batch.column("doc_id"),
            "status": pa.array(statuses, pa.string()),
            "existed": batch.column("existed"),
            "reason": pa.array(reasons, pa.string()),
            "document": batch.column("document"),
            "indices": pa.array(indices, pa.list_(pa.int32())),
            "values": pa.array(values, pa.list_(pa.float32())),
            "truncated": pa.array(truncated, pa.bool_()),
        }
        return pa.table(columns, schema=ENCODED_SCHEMA)


def document_from_row(document_json: str) -> Document:
    return Document.model_validate(json.loads(document_json))

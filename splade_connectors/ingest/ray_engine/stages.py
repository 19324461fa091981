"""The two map stages of the Ray pipeline: prepare (validate, hash, classify) and encode.

Both are callable classes run by Ray Data actor pools (state: a store connection, a loaded model)
on pyarrow batches. They use the same functions as the single-process engine (`parse_jsonl_line`,
`to_document`, `with_content_hash`, `stored_statuses`, `fail_on`, `encode_isolating`), so records are judged the same way.

Records travel in *groups*: one row per run of `group` input positions ([k * group, (k+1) * group)),
with one list per field. The encoder encodes one group per call, which is the list of texts the
single-process engine encodes for a corpus without invalid records, so both engines store the same
vectors (another batch composition changes float rounding at the 1e-6 level); and since a group is
one row, Ray's batching can never split it, whatever the batch size (GPU actors need an explicit one).
Each record has a status: "encode" (to encode and write), "unchanged" (same content hash as stored:
skipped) or "invalid" (with a reason), and keeps its input position for the report.
"""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

import pyarrow as pa

from splade_connectors.errors import IngestError
from splade_connectors.ingest.config import IngestConfig
from splade_connectors.ingest.identity import EncodingIdentity, encoding_identity
from splade_connectors.ingest.isolation import encode_isolating
from splade_connectors.ingest.ray_engine.options import EncoderSpec
from splade_connectors.ingest.session import duplicate, fail_on, stored_statuses, with_content_hash
from splade_connectors.ingest.sources import parse_jsonl_line
from splade_connectors.ingest.validate import InvalidRecord, to_document
from splade_connectors.records import Document
from splade_connectors.registry import build_store
from splade_connectors.store import StoreConfigBase

logger = logging.getLogger(__name__)

ENCODE, UNCHANGED, INVALID = "encode", "unchanged", "invalid"

_FIELDS = [
    ("positions", pa.list_(pa.int64())),
    ("doc_ids", pa.list_(pa.string())),
    ("statuses", pa.list_(pa.string())),
    ("existed", pa.list_(pa.bool_())),
    ("reasons", pa.list_(pa.string())),
    ("documents", pa.list_(pa.string())),  # Document JSON (with its content hash) of "encode" records
]
PREPARED_SCHEMA = pa.schema([("group", pa.int64()), *_FIELDS, ("texts", pa.list_(pa.string()))])
ENCODED_SCHEMA = pa.schema([
    ("group", pa.int64()),
    *_FIELDS,
    ("indices", pa.list_(pa.list_(pa.int32()))),
    ("values", pa.list_(pa.list_(pa.float32()))),
    ("truncated", pa.list_(pa.bool_())),
    ("chunked", pa.list_(pa.bool_())),
])


class _Group:
    """The records of one group while it is being prepared."""

    def __init__(self) -> None:
        self.fields: dict[str, list[Any]] = {name: [] for name, _ in _FIELDS}
        self.texts: list[str | None] = []

    def add(self, position: int, doc_id: str | None, status: str, reason: str | None = None) -> int:
        for name, value in (("positions", position), ("doc_ids", doc_id), ("statuses", status), ("existed", False),
                            ("reasons", reason), ("documents", None)):
            self.fields[name].append(value)
        self.texts.append(None)
        return len(self.texts) - 1


class PrepareBatches:
    """Parse and validate raw rows, hash valid documents, look up their stored hashes; emit groups."""

    def __init__(
        self, store_config: StoreConfigBase, vocabulary: list[str], config: IngestConfig, identity_key: str, group: int,
        duplicates: frozenset[int] = frozenset(),
    ) -> None:
        self.config, self.identity_key, self.group = config, identity_key, group
        self.duplicates = duplicates  # positions of later copies of an id (the driver's pass: first one wins)
        self.store = build_store(store_config, vocabulary=vocabulary).open(create=False)

    def __call__(self, batch: pa.Table) -> pa.Table:
        config = self.config
        groups: dict[int, _Group] = {}
        valid: list[tuple[_Group, int, Document]] = []
        for position, raw in zip(batch.column("position").to_pylist(), batch.column("raw").to_pylist()):
            group = groups.setdefault(position // self.group, _Group())
            result = to_document(parse_jsonl_line(position, raw or b""), config.fields)
            if isinstance(result, Document) and position in self.duplicates:
                result = duplicate(position, result.id)
            if isinstance(result, InvalidRecord):
                fail_on(result, config)
                group.add(position, result.doc_id, INVALID, result.reason)
                continue
            document = with_content_hash(result, self.identity_key)
            valid.append((group, group.add(position, document.id, ENCODE), document))
        if valid:
            statuses = stored_statuses(self.store, [d for _, _, d in valid], config)
            for (group, row, document), status in zip(valid, statuses):
                group.fields["existed"][row] = status != "new"
                if status == "unchanged":
                    group.fields["statuses"][row] = UNCHANGED
                    continue
                group.fields["documents"][row] = document.model_dump_json()
                group.texts[row] = document.text_to_encode(config.with_title)
        columns: dict[str, list[Any]] = {"group": list(groups), **{name: [] for name, _ in _FIELDS}, "texts": []}
        for group in groups.values():
            for name, _ in _FIELDS:
                columns[name].append(group.fields[name])
            columns["texts"].append(group.texts)
        return pa.table(columns, schema=PREPARED_SCHEMA)

    def __del__(self) -> None:
        store = getattr(self, "store", None)
        if store is not None:
            store.close()


class EncodeBatches:
    """One model load per actor; encodes each group's "encode" records in one call, isolating refused texts."""

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
        data = batch.to_pydict()
        data["indices"], data["values"], data["truncated"], data["chunked"] = [], [], [], []
        for statuses, reasons, texts, positions, doc_ids in zip(
            data["statuses"], data["reasons"], data["texts"], data["positions"], data["doc_ids"]
        ):
            indices: list[list[int] | None] = [None] * len(statuses)
            values: list[list[float] | None] = [None] * len(statuses)
            truncated = [False] * len(statuses)
            chunked = [False] * len(statuses)
            rows = [i for i, status in enumerate(statuses) if status == ENCODE]
            outcome = encode_isolating(self.encoder, [texts[i] for i in rows])
            for j in outcome.truncated:
                truncated[rows[j]] = True
            for j in outcome.chunked:
                chunked[rows[j]] = True
            for j, row in enumerate(rows):
                if j in outcome.refused:
                    statuses[row], reasons[row] = INVALID, outcome.refused[j]
                    fail_on(InvalidRecord(position=positions[row], doc_id=doc_ids[row], reason=reasons[row]), self.config)
                    continue
                vector = outcome.vectors[j]
                assert vector is not None
                indices[row], values[row] = vector.indices.tolist(), vector.values.tolist()
            data["indices"].append(indices)
            data["values"].append(values)
            data["truncated"].append(truncated)
            data["chunked"].append(chunked)
        del data["texts"]
        return pa.table(data, schema=ENCODED_SCHEMA)


def document_from_row(document_json: str) -> Document:
    return Document.model_validate(json.loads(document_json))

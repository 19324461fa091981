"""Reading a JSONL or Parquet file as a sharded Ray Dataset of (position, raw record) rows.

The driver cuts the file into shards of `shard_records` records (JSONL: one streaming pass that
finds line boundaries; Parquet: row groups from the footer) without holding the data; each read
task reads its shard and yields blocks of at most `shard_records` rows. Rows keep the record's
position in the file (line number for JSONL, row number for Parquet), so validation reports the
same positions as the single-process engine. The raw record is the line's bytes (JSONL) or the
row as JSON (Parquet); parsing and validation happen downstream with the shared functions.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from splade_connectors.ingest.sources import source_format

RAW_SCHEMA = pa.schema([("position", pa.int64()), ("raw", pa.binary())])
_SCAN_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Shard:
    """Records [first_position, first_position + records) at bytes [start, end) or in one row group."""

    first_position: int
    records: int
    start: int = 0
    end: int = 0
    row_group: int = -1


def jsonl_shards(path: str | Path, shard_records: int) -> list[Shard]:
    """Line-aligned byte ranges of `shard_records` lines each (a last line without newline counts)."""
    shards: list[Shard] = []
    start = offset = lines = first = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_SCAN_CHUNK):
            ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10) + 1  # offsets after each newline
            taken = 0
            while len(ends) - taken >= shard_records - lines:
                cut = offset + int(ends[taken + shard_records - lines - 1])
                taken += shard_records - lines
                shards.append(Shard(first, shard_records, start, cut))
                first += shard_records
                start, lines = cut, 0
            lines += len(ends) - taken
            offset += len(chunk)
    if offset > start:  # trailing lines, the last one maybe without a newline
        lines += 0 if _ends_with_newline(path) else 1
        shards.append(Shard(first, lines, start, offset))
    return shards


def _ends_with_newline(path: str | Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


def parquet_shards(path: str | Path) -> list[Shard]:
    import pyarrow.parquet as pq

    shards: list[Shard] = []
    first = 0
    metadata = pq.ParquetFile(path).metadata
    for group in range(metadata.num_row_groups):
        rows = metadata.row_group(group).num_rows
        shards.append(Shard(first, rows, row_group=group))
        first += rows
    return shards


def _read_jsonl(path: str, shard: Shard, block_rows: int) -> Iterator[pa.Table]:
    with open(path, "rb") as handle:
        handle.seek(shard.start)
        data = handle.read(shard.end - shard.start)
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    for begin in range(0, len(lines), block_rows):
        part = lines[begin : begin + block_rows]
        positions = range(shard.first_position + begin, shard.first_position + begin + len(part))
        yield pa.table([pa.array(positions, pa.int64()), pa.array(part, pa.binary())], schema=RAW_SCHEMA)


def _json_default(value: object) -> str:
    """Parquet values JSON lacks: dates and times as ISO 8601 (as the payload rule stores them), others as text."""
    return value.isoformat() if isinstance(value, (dt.date, dt.time)) else str(value)


def _read_parquet(path: str, shard: Shard, block_rows: int) -> Iterator[pa.Table]:
    import pyarrow.parquet as pq

    position = shard.first_position
    with pq.ParquetFile(path) as parquet:
        for batch in parquet.iter_batches(batch_size=block_rows, row_groups=[shard.row_group]):
            rows = [json.dumps(row, ensure_ascii=False, default=_json_default).encode("utf-8") for row in batch.to_pylist()]
            positions = range(position, position + len(rows))
            position += len(rows)
            yield pa.table([pa.array(positions, pa.int64()), pa.array(rows, pa.binary())], schema=RAW_SCHEMA)


class RecordDatasource(Datasource):
    """A JSONL or Parquet file as read tasks of (position, raw) rows; one task per shard."""

    def __init__(self, path: str | Path, shard_records: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # ray leaves Datasource.__init__ unannotated
        self.path = str(path)
        self.format = source_format(path)
        self.block_rows = shard_records
        self.shards = parquet_shards(path) if self.format == "parquet" else jsonl_shards(path, shard_records)

    def get_name(self) -> str:
        return f"Read{self.format.upper()}"

    def estimate_inmemory_data_size(self) -> int | None:
        return Path(self.path).stat().st_size

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context: object = None) -> list[ReadTask]:
        reader = _read_parquet if self.format == "parquet" else _read_jsonl
        tasks = []
        for shard in self.shards:
            size = shard.end - shard.start if shard.end else None
            metadata = BlockMetadata(num_rows=shard.records, size_bytes=size, exec_stats=None, input_files=(self.path,))
            tasks.append(ReadTask(_bind(reader, self.path, shard, self.block_rows), metadata, schema=RAW_SCHEMA))
        return tasks


def _bind(reader: Callable[[str, Shard, int], Iterator[pa.Table]], path: str, shard: Shard, block_rows: int) -> Callable[[], Iterator[pa.Table]]:
    return lambda: reader(path, shard, block_rows)

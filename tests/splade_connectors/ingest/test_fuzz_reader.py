"""Fuzzing the JSONL reader and validation: no exception escapes, every line is a record or a refusal.

Seeded and bounded in count and time (a few seconds in the suite). Run longer by hand, e.g.:

    SPLADE_CONNECTORS_FUZZ_INPUTS=200000 SPLADE_CONNECTORS_FUZZ_SECONDS=600 SPLADE_CONNECTORS_FUZZ_SEED=7 \\
        python -m pytest tests/splade_connectors/ingest/test_fuzz_reader.py -q -s

(`-s` shows how many inputs were tried.) Lines are written to files of a few hundred lines and read
back with `from_jsonl`, as an ingestion reads them, with a small line limit so over-long lines occur.
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from pathlib import Path

from splade_connectors.ingest.sources import FieldMap, from_jsonl
from splade_connectors.ingest.validate import InvalidRecord, to_document
from splade_connectors.payload import checked_metadata
from splade_connectors.records import Document
from tests.splade_connectors.ingest.fuzz_inputs import LineMaker

LINE_LIMIT = 256 * 1024  # bytes; "huge" strings are made past it
FILE_LINES = 200
MEMORY_BOUND = 32 * 1024 * 1024  # tracemalloc peak: one file of lines held by the test, never unbounded


def _setting(name: str, default: int) -> int:
    return int(os.environ.get(f"SPLADE_CONNECTORS_FUZZ_{name}", default))


def test_fuzzed_lines_are_records_or_refusals_in_bounded_memory(tmp_path: Path) -> None:
    inputs, seconds, seed = _setting("INPUTS", 2000), _setting("SECONDS", 5), _setting("SEED", 25)
    maker = LineMaker(seed, huge=LINE_LIMIT + 1000)
    path = tmp_path / "fuzz.jsonl"
    tried = documents = refused = 0
    deadline = time.monotonic() + seconds  # a bound on the work, not an assertion
    tracemalloc.start()
    try:
        while tried < inputs and time.monotonic() < deadline:
            lines = [maker.line().replace(b"\n", b" ") for _ in range(min(FILE_LINES, inputs - tried))]
            path.write_bytes(b"".join(line + b"\n" for line in lines))
            raws = list(from_jsonl(path, max_line_bytes=LINE_LIMIT))
            assert [r.position for r in raws] == list(range(len(lines)))  # one record position per line, in order
            results = [to_document(raw, FieldMap()) for raw in raws]
            for line, raw, result in zip(lines, raws, results):
                if isinstance(result, Document):
                    documents += 1
                    json.dumps(result.payload(), allow_nan=False)  # strict JSON, what every store can take
                    assert checked_metadata(result.metadata) == result.metadata
                else:
                    assert isinstance(result, InvalidRecord) and result.reason, line[:200]
                    assert result.position == raw.position
                    refused += 1
            tried += len(lines)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"fuzz: seed {seed}, {tried} inputs tried, {documents} records, {refused} refusals, peak {peak / 2**20:.1f} MiB")
    assert tried >= min(inputs, 200) and documents > 0 and refused > 0
    assert peak < MEMORY_BOUND

"""The payload rule on every store: one hostile input file, the same stored payloads, refusals and counts.

The file holds NaN/Infinity/1e400 (stored as null), odd numbers (-0, the int64 bounds, 1e300),
nested objects and arrays, metadata keys named like the payload's own fields, and records outside
the rule: a line nested 5,000 levels deep, metadata nested too deep, dotted and empty keys, an
integer past int64, a mixed array, an integer too long to read. Each store is filled through the
CLI's `ingest` (exit code 0: refused records are reported, the run goes on), then read back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from splade_connectors.registry import open_store, store_config
from splade_connectors.store import SparseStore
from tests.splade_connectors.cli.conftest import CliRun

pytestmark = pytest.mark.live

_NESTED_TOO_DEEP = '{"k": ' * 17 + "1" + "}" * 17
LINES = [
    '{"_id": "plain", "text": "Vitamin D and bone density.", "year": 2020, "source": "pubmed"}',
    '{"_id": "non-finite", "text": "Calcium intake and fracture risk.", "score": NaN, '
    '"stats": {"max": Infinity, "min": -Infinity, "values": [1.5, NaN]}, "huge": 1e400}',
    '{"_id": "numbers", "text": "Bone loss in astronauts.", "zero": -0, "negzero": -0.0, '
    '"int64": 9223372036854775807, "small": -9223372036854775808, "large_float": 1e300}',
    '{"_id": "nested", "text": "Proteins fold in water.", "origin": {"name": "pubmed", "tags": ["a", "b"], '
    '"deep": {"l2": {"l3": {"l4": true}}}}, "matrix": [[1, 2], [3]], "objects": [{"k": 1}, {"k": 2, "extra": null}], '
    '"empty": {}, "none": null}',
    '{"_id": "reserved", "text": "Reserved names.", "doc_id": "other", "content_hash": "mine", '
    '"metadata": {"title": "inner", "text": "inner text"}}',
    '{"_id": "deep-line", "text": "t", "m": ' + "[" * 5000 + "]" * 5000 + "}",
    '{"_id": "too-deep-metadata", "text": "t", "m": ' + _NESTED_TOO_DEEP + "}",
    '{"_id": "dotted-key", "text": "t", "a.b": 1}',
    '{"_id": "empty-key", "text": "t", "x": {"": 1}}',
    '{"_id": "big-int", "text": "t", "n": 9223372036854775808}',
    '{"_id": "mixed-array", "text": "t", "tags": [1, "one"]}',
    '{"_id": "long-int", "text": "t", "n": ' + "7" * 5000 + "}",
    '{"_id": "plain-2", "text": "Second plain record.", "year": 2019}',
    '{"_id": "underscores", "text": "Keys like the stores own ones.", "_source": "s", "_routing": "r", '
    '"under": {"_id": 1, "_source": {"_index": "x"}, "id": "i"}, "$dollar": "d", "spaced key": "k"}',
]
STORED = {
    "plain": {"year": 2020, "source": "pubmed"},
    "non-finite": {"score": None, "stats": {"max": None, "min": None, "values": [1.5, None]}, "huge": None},
    "numbers": {"zero": 0, "negzero": -0.0, "int64": 2**63 - 1, "small": -(2**63), "large_float": 1e300},
    "nested": {
        "origin": {"name": "pubmed", "tags": ["a", "b"], "deep": {"l2": {"l3": {"l4": True}}}},
        "matrix": [[1, 2], [3]], "objects": [{"k": 1}, {"k": 2, "extra": None}], "empty": {}, "none": None,
    },
    "reserved": {"doc_id": "other", "content_hash": "mine", "title": "inner", "text": "inner text"},
    "plain-2": {"year": 2019},
    "underscores": {
        "_source": "s", "_routing": "r", "under": {"_id": 1, "_source": {"_index": "x"}, "id": "i"}, "$dollar": "d",
        "spaced key": "k",
    },
}
REFUSED = [
    "record #5 (no id): line 6 nests arrays/objects more than 64 levels deep",
    "record #6 (id 'too-deep-metadata'): metadata.m" + ".k" * 16 + " is nested more than 16 levels deep",
    "record #7 (id 'dotted-key'): metadata has a key with '.' ('a.b'): dots are reserved for paths",
    "record #8 (id 'empty-key'): metadata.x has an empty or blank key",
    "record #9 (id 'big-int'): metadata.n is an integer outside the int64 range",
    "record #10 (id 'mixed-array'): metadata.tags mixes number and string in one array",
    "record #11 (no id): line 12 is not readable JSON (a number has too many digits)",
]


def _store(kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Any]:
    """The CLI's store options and the matching config, for a new collection/index."""
    name = f"payload-{uuid.uuid4().hex[:8]}"
    if kind == "qdrant-embedded":
        return ["--qdrant-path", str(tmp_path / "qdrant"), "--collection", name], store_config(
            "qdrant", path=str(tmp_path / "qdrant"), collection=name
        )
    if kind == "qdrant-server":
        live = request.getfixturevalue("qdrant_server_store")
        if live.api_key:
            monkeypatch.setenv("QDRANT_API_KEY", live.api_key)
        grpc = ["--qdrant-grpc-port", str(live.grpc_port)] if live.grpc_port else []
        return ["--qdrant-url", live.url, "--collection", name, *grpc], store_config(
            "qdrant", url=live.url, api_key=live.api_key, grpc_port=live.grpc_port, collection=name
        )
    live = request.getfixturevalue("opensearch_store")
    options = ["--store", "opensearch", "--opensearch-url", live.url, "--index", name]
    if live.username:
        options += ["--opensearch-user", live.username]
        monkeypatch.setenv("OPENSEARCH_PASSWORD", live.password or "")
    if not live.verify_certs:
        options += ["--no-verify-certs"]
    return options, store_config(
        "opensearch", hosts=[live.url], username=live.username, password=live.password,
        verify_certs=live.verify_certs, index=name,  # the layout the CLI created, whatever it is
    )


@pytest.fixture(params=["qdrant-embedded", "qdrant-server", "opensearch"])
def filled(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliRun]
) -> Iterator[tuple[CliRun, SparseStore]]:
    """The hostile file ingested by the CLI into a new collection/index of one store; the store opened on it."""
    options, config = _store(str(request.param), request, tmp_path, monkeypatch)
    corpus = tmp_path / "hostile.jsonl"
    corpus.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    run = cli("ingest", "--input", str(corpus), *options, "--no-progress", "--json")
    store = open_store(config, vocabulary=request.getfixturevalue("encoder").model.id_to_token())
    try:
        yield run, store
    finally:
        store.drop()
        store.close()


def test_hostile_records_give_the_same_payloads_refusals_and_counts_on_every_store(filled: tuple[CliRun, SparseStore]) -> None:
    run, store = filled
    assert run.code == 0, run.err[-2000:]
    assert "Traceback" not in run.err
    report = json.loads(run.out)
    assert {k: report[k] for k in ("records", "accepted", "new", "invalid", "stored")} == {
        "records": len(LINES), "accepted": len(STORED), "new": len(STORED), "invalid": len(REFUSED), "stored": len(STORED),
    }
    shown = report["invalid_examples"]
    assert len(shown) == len(REFUSED) and all(line.startswith(expected) for line, expected in zip(shown, REFUSED)), shown
    assert store.count() == len(STORED)
    payloads = store.fetch_payloads([*STORED, "deep-line", "dotted-key", "big-int"], ["text", "metadata"])
    assert sorted(payloads) == sorted(STORED)  # refused records are not stored
    for doc_id, metadata in STORED.items():
        # the exact JSON (types, -0.0, int64 bounds), not only equal values
        assert json.dumps(payloads[doc_id]["metadata"], sort_keys=True) == json.dumps(metadata, sort_keys=True), doc_id


def test_an_input_whose_only_record_is_nested_5000_deep_is_one_error_line(cli: Callable[..., CliRun], tmp_path: Path) -> None:
    """Was a RecursionError traceback and exit 1; now an input without a usable record: exit 2, one line."""
    corpus = tmp_path / "deep.jsonl"
    corpus.write_text(LINES[5] + "\n", encoding="utf-8")
    run = cli("ingest", "--input", str(corpus), "--qdrant-path", str(tmp_path / "q"), "--collection", "deep", "--no-progress")
    line = run.error_line()
    assert "no valid record" in line and "nests arrays/objects more than 64 levels deep" in line

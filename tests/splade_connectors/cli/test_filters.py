"""`--filter doc_id=4983` finds string ids, and numeric metadata stays filterable, on both stores."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from splade_connectors.cli.search import parse_filters
from splade_connectors.errors import ConfigError
from tests.splade_connectors.cli.conftest import CliRun, write_jsonl

Cli = Callable[..., CliRun]
DOCS = [  # SciFact-like all-digit ids (strings), an integer and a boolean metadata field
    {"_id": "4983", "text": "Vitamin D supplements and bone density in older adults.", "year": 2020, "open": True},
    {"_id": "5001", "text": "Bone density loss in astronauts during long space flights.", "year": 2019, "open": False},
    {"_id": "77", "text": "Calcium intake, vitamin D and fracture risk: a cohort study.", "year": 2020, "open": False},
]
QUERY = "vitamin d and bone density"


def test_parse_filters() -> None:
    assert parse_filters([]) is None
    assert parse_filters(["doc_id=4983"]) == {"doc_id": ["4983", 4983]}
    assert parse_filters(["source=pubmed"]) == {"source": "pubmed"}
    assert parse_filters(["code=007"]) == {"code": "007"}  # not a canonical integer: the string only
    assert parse_filters(["open=true"]) == {"open": ["true", True]}
    assert parse_filters(["year:int=2020|2019"]) == {"year": [2020, 2019]}
    assert parse_filters(["year:str=2020", "open:bool=False"]) == {"year": "2020", "open": False}
    assert parse_filters(["doc_id=a|12"]) == {"doc_id": ["a", "12", 12]}
    assert parse_filters(["note=a=b"]) == {"note": "a=b"}
    with pytest.raises(ConfigError, match="filtered twice"):
        parse_filters(["year=2020", "year=2019"])


def _ids(run: CliRun) -> list[str]:
    assert run.code == 0, run.err
    return sorted(h["id"] for h in json.loads(run.out)["results"][0]["hits"])


def _check_filters(cli: Cli, store: list[str], *, strict_types: bool) -> None:
    search = ["search", *store, "-q", QUERY, "--json", "--top-k", "10"]
    assert _ids(cli(*search)) == ["4983", "5001", "77"]
    assert _ids(cli(*search, "--filter", "doc_id=4983")) == ["4983"]
    assert _ids(cli(*search, "--filter", "doc_id=4983|77")) == ["4983", "77"]
    assert _ids(cli(*search, "--filter", "year=2020")) == ["4983", "77"]
    assert _ids(cli(*search, "--filter", "year:int=2019")) == ["5001"]
    assert _ids(cli(*search, "--filter", "open=true")) == ["4983"]
    assert _ids(cli(*search, "--filter", "year=2020", "--filter", "open=false")) == ["77"]
    if strict_types:  # Qdrant compares types: the integer field holds no string "2020"
        assert _ids(cli(*search, "--filter", "year:str=2020")) == []


def test_filters_on_qdrant(cli: Cli, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    store = ["--qdrant-path", str(tmp_path / "qdrant"), "--collection", "sf"]
    assert cli("ingest", "--input", str(corpus), *store, "--no-progress").code == 0
    _check_filters(cli, store, strict_types=True)


def test_bad_field_names_and_integers_are_one_line_on_the_embedded_engine(cli: Cli, tmp_path: Path) -> None:
    """`*`, `a b` or an integer beyond 64 bits: one error line, as the server gives, not an engine traceback."""
    corpus = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    store = ["--qdrant-path", str(tmp_path / "qdrant"), "--collection", "sf"]
    assert cli("ingest", "--input", str(corpus), *store, "--no-progress").code == 0
    search = ["search", *store, "-q", QUERY]
    assert "'*' is not a valid field name" in cli(*search, "--filter", "*=1").error_line()
    assert "'a b' is not a valid field name" in cli(*search, "--filter", "a b=1").error_line()
    assert "out of the 64-bit range" in cli(*search, "--filter", f"year:int={2**64}").error_line()
    assert _ids(cli(*search, "--json", "--filter", "year:int=2019")) == ["5001"]  # the store still answers


def test_a_native_filter_the_embedded_engine_refuses_is_one_store_error(tmp_path: Path) -> None:
    """A qdrant-client Filter (passed through unchecked) with a key or value the engine refuses: one StoreError line."""
    from qdrant_client import models

    from splade_connectors.errors import StoreError
    from splade_connectors.qdrant import QdrantConfig, QdrantStore
    from splade_connectors.records import Document, EncodedDocument
    from trainer.sparse import SparseVector

    vector = SparseVector.from_pairs({5: 1.0})
    with QdrantStore(QdrantConfig(path=str(tmp_path / "q"), collection="c")) as store:
        store.upsert([EncodedDocument(document=Document(id="a", text="t", metadata={"year": 1}), sparse=vector)])
        for condition in (
            models.FieldCondition(key="*", match=models.MatchValue(value=1)),
            models.FieldCondition(key="metadata.year", match=models.MatchValue(value=2**70)),
        ):
            with pytest.raises(StoreError) as raised:
                store.search_batch([vector], top_k=3, filter=models.Filter(must=[condition]))
            message = str(raised.value)
            assert "embedded Qdrant engine refused it" in message and "\n" not in message
        assert [h.id for h in store.search_batch([vector], top_k=3)[0]] == ["a"]


@pytest.fixture
def opensearch_index(opensearch_store: Any) -> Iterator[str]:
    name = f"cli-filter-{uuid.uuid4().hex[:8]}"
    yield name
    request = urllib.request.Request(f"{opensearch_store.url}/{name}?ignore_unavailable=true", method="DELETE")
    with urllib.request.urlopen(request, timeout=30):
        pass


@pytest.mark.live
def test_filters_on_opensearch(cli: Cli, tmp_path: Path, opensearch_store: Any, opensearch_index: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if opensearch_store.password:
        monkeypatch.setenv("OPENSEARCH_PASSWORD", opensearch_store.password)
    corpus = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    store = ["--store", "opensearch", "--opensearch-url", opensearch_store.url, "--index", opensearch_index]
    if opensearch_store.username:
        store += ["--opensearch-user", opensearch_store.username]
    if not opensearch_store.verify_certs:
        store += ["--no-verify-certs"]
    assert cli("ingest", "--input", str(corpus), *store, "--no-progress").code == 0
    _check_filters(cli, store, strict_types=False)

"""The one meaning of a search filter (`splade_connectors.filters`): every kind of key, every error."""

from __future__ import annotations

from typing import Any

import pytest

from splade_connectors.errors import ConfigError
from splade_connectors.filters import FieldMatch, field_matches, payload_path
from splade_connectors.records import METADATA_FIELD, TOP_LEVEL_FIELDS, Document


def _one(key: str, value: Any) -> FieldMatch:
    (match,) = field_matches({key: value})
    return match


def test_keys_are_read_against_the_payload_layout() -> None:
    """What each kind of key addresses, on every store."""
    assert _one("doc_id", "4983") == FieldMatch(key="doc_id", kind="document_id", path="doc_id", values=("4983",))
    assert _one("title", "Bone density") == FieldMatch(key="title", kind="record_field", path="title", values=("Bone density",))
    assert _one("content_hash", "ab12").kind == "record_field"
    assert _one("year", 2020) == FieldMatch(key="year", kind="metadata", path="metadata.year", values=(2020,))
    assert _one("id", "7") == FieldMatch(key="id", kind="metadata", path="metadata.id", values=("7",))  # not the document id
    assert _one("source.name", "pubmed") == FieldMatch(key="source.name", kind="metadata", path="metadata.source.name", values=("pubmed",))
    assert _one("metadata.source.name", "pubmed").path == "metadata.source.name"
    assert _one("metadata.title", "x").path == "metadata.title"  # a metadata field named like a record field
    assert [m.path for m in field_matches({"year": 1, "doc_id": "a", "title": "t"})] == ["metadata.year", "doc_id", "title"]
    assert field_matches({}) == []


def test_payload_layout_is_what_documents_write() -> None:
    """The top-level fields the filter meaning relies on are exactly the ones `Document.payload` writes."""
    full = Document(id="d", text="t", title="T", metadata={"a": 1}, content_hash="h").payload()
    assert set(full) == TOP_LEVEL_FIELDS | {METADATA_FIELD}
    assert payload_path("text") == ("record_field", "text")  # a name (payload indexes), though no exact filter


def test_values_keep_their_types() -> None:
    assert _one("year", [2020, "2020"]).values == (2020, "2020")
    assert _one("open", ["true", True]).values == ("true", True)
    assert _one("flag", [1, True, 1, True]).values == (1, True)  # 1 == True in Python, not in a store
    assert _one("tags", ("a", "b", "a")).values == ("a", "b")
    assert set(_one("tags", {"a", "b"}).values) == {"a", "b"}


def test_document_ids_are_strings() -> None:
    assert _one("doc_id", 4983).values == ("4983",)
    assert _one("doc_id", ["4983", 4983]).values == ("4983",)  # what `--filter doc_id=4983` gives
    assert _one("doc_id", ["true", True, False]).values == ("true", "false")


def test_cli_filters_mean_the_same() -> None:
    """What the CLI's `--filter` produces (typed forms included) is read like any user dict."""
    from splade_connectors.cli.search import parse_filters

    parsed = parse_filters(["doc_id=4983|77", "year:int=2020", "open=true", "source.name:str=pubmed"])
    assert parsed is not None
    assert {m.path: m.values for m in field_matches(parsed)} == {
        "doc_id": ("4983", "77"), "metadata.year": (2020,), "metadata.open": ("true", True), "metadata.source.name": ("pubmed",),
    }


@pytest.mark.parametrize(
    ("filter", "names"),
    [
        ("topic=x", "got str"),
        ([("topic", "x")], "got list"),
        ({"": "x"}, "''"),
        ({" ": "x"}, "' '"),
        ({".year": 1}, "'.year'"),
        ({"year.": 1}, "'year.'"),
        ({"a..b": 1}, "'a..b'"),
        ({"metadata": "x"}, "'metadata'"),
        ({"metadata.": "x"}, "'metadata.'"),
        ({"title.x": "x"}, "'title.x'"),
        ({"doc_id.x": "x"}, "'doc_id.x'"),
        ({"text": "whole text"}, "'text'"),
        ({5: "x"}, "5"),
        ({"score": 1.5}, "'score'"),
        ({"score": None}, "'score'"),
        ({"score": {"gte": 1}}, "'score'"),
        ({"score": [1, 1.5]}, "'score'"),
        ({"tags": [["a"]]}, "'tags'"),
        ({"tags": []}, "'tags'"),
        ({"doc_id": None}, "'doc_id'"),
        ({"*": "x"}, "'*'"),
        ({"a b": "x"}, "'a b'"),
        ({"tags[]": "x"}, "'tags[]'"),
        ({"source.na me": "x"}, "'source.na me'"),
        ({"year": 2**63}, "'year'"),
        ({"year": [1, -(2**63) - 1]}, "'year'"),
    ],
)
def test_invalid_filters_are_config_errors_naming_the_key(filter: Any, names: str) -> None:
    with pytest.raises(ConfigError) as raised:
        field_matches(filter)
    message = str(raised.value)
    assert names in message and "\n" not in message

"""Config, error classification and filter building: no Qdrant needed."""

from __future__ import annotations

import httpx
import pytest
from qdrant_client import models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from splade_connectors.qdrant import QdrantConfig, build_filter
from splade_connectors.qdrant.errors import translate
from splade_connectors.retry import is_transient
from splade_connectors.qdrant.hybrid import fusion_query
from splade_connectors.store import ConfigMismatchError, StoreError, TransientStoreError


def _response(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status, "x", b"{}", httpx.Headers())


def test_config_defaults_are_embedded_in_memory() -> None:
    config = QdrantConfig()
    assert config.mode == "memory" and config.embedded
    assert config.sparse_name == "splade" and not config.idf


def test_api_key_never_shows() -> None:
    config = QdrantConfig(url="http://q:6333", api_key="s3cret-key")
    assert "s3cret" not in repr(config) and "s3cret" not in str(config.model_dump()) and "s3cret" not in config.describe()
    assert config.api_key is not None and config.api_key.get_secret_value() == "s3cret-key"


@pytest.mark.parametrize(
    "options",
    [
        {"url": "http://q:6333", "path": "/tmp/x"},
        {"dense_name": "dense"},
        {"dense_name": "splade", "dense_size": 4},
    ],
)
def test_config_rejects_inconsistent_options(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        QdrantConfig(**options)


class _FakeRpcError(Exception):
    __module__ = "grpc._channel"

    def __init__(self, name: str) -> None:
        import grpc

        self._code = getattr(grpc.StatusCode, name)

    def code(self) -> object:
        return self._code


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_response(503), True),
        (_response(500), True),
        (_response(429), True),
        (_response(400), False),
        (_response(404), False),
        (_response(422), False),
        (ResponseHandlingException(httpx.ConnectError("refused")), True),
        (httpx.ReadTimeout("slow"), True),
        (httpx.ConnectError("refused"), True),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (TransientStoreError("x"), True),
        (StoreError("x"), False),
        (ConfigMismatchError("x"), False),
        (ValueError("bad vector"), False),
        (_FakeRpcError("UNAVAILABLE"), True),
        (_FakeRpcError("DEADLINE_EXCEEDED"), True),
        (_FakeRpcError("INVALID_ARGUMENT"), False),
    ],
)
def test_client_errors_map_to_transient_or_permanent(error: BaseException, expected: bool) -> None:
    mapped = translate(error, "qdrant collection 'c' (http://h:6333)", "upsert")
    assert is_transient(mapped) is expected
    assert mapped is error or str(mapped).startswith("qdrant collection 'c' (http://h:6333): upsert failed")


def test_build_filter_dict() -> None:
    built = build_filter({"topic": "cooking", "doc_id": ["a", "b"], "reading_minutes": 2, "metadata.x": True})
    assert built is not None and built.must is not None
    by_key = {c.key: c.match for c in built.must}  # type: ignore[union-attr]
    assert by_key["metadata.topic"] == models.MatchValue(value="cooking")
    assert by_key["doc_id"] == models.MatchAny(any=["a", "b"])
    assert by_key["metadata.reading_minutes"] == models.MatchValue(value=2)
    assert by_key["metadata.x"] == models.MatchValue(value=True)


def test_build_filter_passthrough_and_errors() -> None:
    native = models.Filter(must_not=[models.FieldCondition(key="doc_id", match=models.MatchValue(value="x"))])
    assert build_filter(native) is native
    assert build_filter(None) is None and build_filter({}) is None
    with pytest.raises(ValueError):
        build_filter({"score": 1.5})
    with pytest.raises(ValueError):
        build_filter({"topic": []})
    with pytest.raises(TypeError):
        build_filter("topic=x")  # type: ignore[arg-type]


def test_rrf_k_is_explicit() -> None:
    query = fusion_query("rrf")
    assert isinstance(query, models.RrfQuery) and query.rrf.k == 61  # Qdrant counts positions from 0
    assert fusion_query("rrf", 2).rrf.k == 3  # type: ignore[union-attr]
    assert isinstance(fusion_query("dbsf"), models.FusionQuery)
    with pytest.raises(ValueError):
        fusion_query("rrf", 0)

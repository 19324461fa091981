"""Config, error classification and filter building: no Qdrant needed."""

from __future__ import annotations

import httpx
import pytest
from qdrant_client import models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from splade_connectors.errors import AuthenticationError, ConfigError, StoreLockedError
from splade_connectors.qdrant import QdrantConfig, build_filter
from splade_connectors.qdrant.errors import translate
from splade_connectors.qdrant.hybrid import fusion_query
from splade_connectors.retry import is_transient
from splade_connectors.store import ConfigMismatchError, StoreError, TransientStoreError


def _response(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status, "x", b"{}", httpx.Headers())


def test_config_defaults_are_the_embedded_engine_in_memory() -> None:
    config = QdrantConfig()
    assert config.mode == "memory" and config.embedded and config.backend == "edge"
    assert config.sparse_name == "splade" and not config.idf
    assert QdrantConfig(path="/x").backend == "edge" and QdrantConfig(local_mode=True).backend == "local"
    assert QdrantConfig(url="http://q:6333").backend == "server"
    assert config.index_fields() == {"doc_id": "keyword"}
    assert QdrantConfig(payload_indexes={"topic": "keyword", "metadata.year": "integer"}).index_fields() == {
        "doc_id": "keyword", "metadata.topic": "keyword", "metadata.year": "integer",
    }


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
        {"url": "http://q:6333", "local_mode": True},
        {"datatype": "int4"},
        {"payload_indexes": {"topic": "vector"}},
        {"upload_parallel": 0},
        {"max_request_mb": 0},
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
    by_key = {c.key: c.match for c in built.must}
    assert by_key["metadata.topic"] == models.MatchValue(value="cooking")
    assert by_key["doc_id"] == models.MatchAny(any=["a", "b"])
    # document ids are strings: a number given for doc_id matches the string id
    assert build_filter({"doc_id": 4983}).must[0].match == models.MatchValue(value="4983")
    assert build_filter({"doc_id": [1, "b"]}).must[0].match == models.MatchAny(any=["1", "b"])
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
    with pytest.raises(ConfigError, match="got str"):  # the project's error, not a bare TypeError
        build_filter("topic=x")


def test_build_filter_translates_every_kind_of_key() -> None:
    """The contract decides what a key is; the adapter puts each match on its payload path."""
    built = build_filter({"title": "Bone density", "source.name": "pubmed", "id": "7"})
    assert built is not None and built.must is not None
    assert [(c.key, c.match) for c in built.must] == [
        ("title", models.MatchValue(value="Bone density")),
        ("metadata.source.name", models.MatchValue(value="pubmed")),
        ("metadata.id", models.MatchValue(value="7")),  # `id` is a metadata field, not the document id
    ]
    mixed = build_filter({"year": ["2020", 2020, True]})
    assert mixed is not None and mixed.must is not None
    (any_of,) = mixed.must
    assert isinstance(any_of, models.Filter) and any_of.should is not None
    assert [c.match for c in any_of.should] == [
        models.MatchAny(any=["2020"]), models.MatchAny(any=[2020]), models.MatchValue(value=True),
    ]
    for bad in ({"text": "x"}, {"title.x": "x"}, {"": 1}, {"year": 1.5}):
        with pytest.raises(ConfigError):
            build_filter(bad)


def test_boolean_filters_stay_boolean_on_the_embedded_engine() -> None:
    """qdrant-edge reads a Python bool as the integer 1 (matching no stored boolean): the translation keeps a boolean."""
    from splade_connectors.qdrant.filters import to_edge_filter

    for spec in ({"open": True}, {"open": [False, "false"]}):
        edge = to_edge_filter(build_filter(spec))
        conditions = edge.must if not isinstance(edge.must[0], type(edge)) else edge.must[0].should
        values = [c.match.value for c in conditions]
        assert any(v is True or v is False for v in values) and not any(type(v) is int for v in values)


def test_payload_index_names_mean_what_filter_keys_mean() -> None:
    config = QdrantConfig(payload_indexes={"source.name": "keyword", "title": "text", "text": "text"})
    assert config.index_fields() == {
        "doc_id": "keyword", "metadata.source.name": "keyword", "title": "text", "text": "text",
    }
    for bad in ("", ".a", "a.", "metadata", "title.x"):
        with pytest.raises(ValueError, match="field name"):
            QdrantConfig(payload_indexes={bad: "keyword"})


def test_rrf_k_is_explicit() -> None:
    query = fusion_query("rrf")
    assert isinstance(query, models.RrfQuery) and query.rrf.k == 61  # Qdrant counts positions from 0
    assert fusion_query("rrf", 2).rrf.k == 3
    assert isinstance(fusion_query("dbsf"), models.FusionQuery)
    with pytest.raises(ValueError):
        fusion_query("rrf", 0)


def test_edge_filter_keeps_every_condition() -> None:
    """A qdrant-client filter becomes the embedded engine's filter of the same shape."""
    import qdrant_edge as qe

    from splade_connectors.qdrant.filters import to_edge_filter

    native = models.Filter(
        must=[
            models.FieldCondition(key="metadata.topic", match=models.MatchAny(any=["a", "b"])),
            models.FieldCondition(key="metadata.year", range=models.Range(gte=2000, lt=2010)),
        ],
        should=[models.FieldCondition(key="doc_id", match=models.MatchValue(value="x"))],
        must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key="title")),
                  models.Filter(must=[models.FieldCondition(key="metadata.flag", match=models.MatchValue(value=True))])],
    )
    edge = to_edge_filter(native)
    assert isinstance(edge, qe.Filter)
    assert [c.key for c in edge.must] == ["metadata.topic", "metadata.year"]
    assert isinstance(edge.must[0].match, qe.MatchAny) and edge.must[0].match.value == ["a", "b"]
    assert edge.must[1].range.gte == 2000 and edge.must[1].range.lt == 2010
    assert edge.should[0].match.value == "x"
    assert isinstance(edge.must_not[0], qe.IsEmptyCondition) and isinstance(edge.must_not[1], qe.Filter)
    flag = edge.must_not[1].must[0].match.value  # a boolean stays a boolean (qdrant-edge reads a bare bool as 1)
    assert flag is True or type(flag).__name__ == "bool"
    assert to_edge_filter(None) is None and to_edge_filter(edge) is edge


class PanicException(BaseException):
    """Stands in for pyo3's PanicException (a BaseException) raised when the embedded engine panics."""


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        (Exception("Service runtime error: failed to open WAL /x/wal: Can't init WAL: Kind(WouldBlock)"), StoreLockedError, "in use"),
        (PermissionError(13, "Permission denied"), StoreLockedError, "not writable"),
        (Exception("Wrong input: Vector dimension error: expected dim: 4, got 2"), StoreError, "refused it"),
        (PanicException("index out of bounds"), StoreError, "panicked"),
    ],
)
def test_embedded_engine_errors_are_permanent_and_named(error: BaseException, expected: type, text: str) -> None:
    mapped = translate(error, "qdrant collection 'c' (embedded /data)", "open", edge=True)
    assert type(mapped) is expected and not is_transient(mapped)
    assert str(mapped).startswith("qdrant collection 'c' (embedded /data): open failed:") and text in str(mapped)


def test_mapped_errors_redacts_secrets_and_keeps_one_line() -> None:
    from splade_connectors.qdrant.errors import mapped_errors

    with pytest.raises(AuthenticationError) as caught:
        with mapped_errors("qdrant collection 'c' (http://h:6333)", "count", ["s3cret-key"]):
            raise _response_with(401, b"Invalid API key s3cret-key\nsecond line")
    assert "s3cret-key" not in str(caught.value) and "\n" not in str(caught.value)
    assert "refused the API key" in str(caught.value)


def _response_with(status: int, body: bytes) -> UnexpectedResponse:
    return UnexpectedResponse(status, "x", body, httpx.Headers())


def test_a_request_over_the_size_limit_is_its_own_permanent_error() -> None:
    """The server's "larger than allowed" (REST) is a `RequestTooLargeError`: not retried, smaller requests may pass."""
    from splade_connectors.errors import RequestTooLargeError

    body = b'{"status":{"error":"JSON payload (41967897 bytes) is larger than allowed (limit: 33554432 bytes)."}}'
    for error in (_response_with(400, body), _response_with(413, b"")):
        mapped = translate(error, "qdrant collection 'c' (http://h:6333)", "upsert of 10 points")
        assert isinstance(mapped, RequestTooLargeError) and not is_transient(mapped)
    assert not isinstance(translate(_response_with(400, b'{"status":{"error":"bad"}}'), "c", "upsert"), RequestTooLargeError)


def test_two_phase_spec_in_config_cli_and_query() -> None:
    from splade_connectors.cli import build_parser
    from splade_connectors.cli.stores import store_config_from_args
    from splade_connectors.qdrant.queries import sparse_query
    from splade_connectors.registry import store_config
    from splade_connectors.two_phase import TwoPhase
    from trainer.sparse import SparseVector

    assert QdrantConfig().two_phase is None
    assert QdrantConfig(two_phase="count=4,expansion=3").two_phase == TwoPhase(count=4, expansion=3)
    assert QdrantConfig(two_phase=True).two_phase == TwoPhase()
    with pytest.raises(ConfigError, match="two-phase"):
        store_config("qdrant", two_phase="ratio=7")
    for extra, expected in (([], None), (["--two-phase"], TwoPhase()), (["--two-phase", "ratio=0.2,expansion=10"], TwoPhase(ratio=0.2, expansion=10))):
        args = build_parser().parse_args(["search", "--qdrant-path", "/nonexistent", "-q", "x", *extra])
        assert store_config_from_args(args).two_phase == expected  # type: ignore[attr-defined]
    query = SparseVector([1, 2, 3, 4], [4.0, 0.5, 3.0, 0.1])
    phased = sparse_query("s", query, limit=10, filter=build_filter({"topic": "a"}), two_phase=TwoPhase(ratio=0.5, expansion=5))
    assert phased.sparse == query and phased.limit == 10 and phased.filter is None and phased.candidates is not None
    assert phased.candidates.sparse == SparseVector([1, 3], [4.0, 3.0]) and phased.candidates.limit == 50
    assert phased.candidates.filter == build_filter({"topic": "a"})  # filters apply where candidates are found
    exact = sparse_query("s", query, limit=10, two_phase=TwoPhase(ratio=0.0))
    assert exact.candidates is None and exact.sparse == query

"""Unit tests of the OpenSearch adapter that need no server."""

from __future__ import annotations

import gzip
import json
import logging
import math
from typing import Any

import numpy as np
import pytest

from splade_connectors.errors import ConfigError, RejectedDocumentsError
from splade_connectors.fusion import linear_fuse, rrf_fuse
from splade_connectors.opensearch import (
    FeatureCodec,
    NativeFilter,
    OpenSearchConfig,
    OpenSearchStore,
    TooManyTermsError,
    escape_token,
    translate,
    unescape_name,
)
from splade_connectors.opensearch.bulk import BulkOutcome, item_failures, plan_requests, raise_for_outcome
from splade_connectors.opensearch.config import is_loopback
from splade_connectors.opensearch.feature_json import FeatureJson, format_weights
from splade_connectors.opensearch.features import compact_weights
from splade_connectors.opensearch.index import bulk_load_settings, check_mapping, index_mappings
from splade_connectors.opensearch.queries import filter_clauses, fit_clause_budget, sparse_query
from splade_connectors.records import Document, EncodedDocument, Hit, point_id
from splade_connectors.retry import is_transient
from splade_connectors.store import ConfigMismatchError, SparseStore, StoreError, TransientStoreError
from trainer.sparse import SparseVector, SparseVectorError

opensearchpy = pytest.importorskip("opensearchpy")


# ---- feature names ---------------------------------------------------------------------------------
def test_every_vocabulary_token_round_trips(vocabulary: list[str]) -> None:
    assert len(vocabulary) == 30522
    codec = FeatureCodec(vocabulary)
    names = [codec.name(i) for i in range(len(vocabulary))]
    assert len(set(names)) == len(vocabulary)
    assert all("." not in n and n for n in names)
    assert all(codec.token_id(n) == i for i, n in enumerate(names))
    assert all(unescape_name(n) == t for n, t in zip(names, vocabulary))
    dotted = [t for t in vocabulary if "." in t]
    assert len(dotted) > 1 and "." in dotted


@pytest.mark.parametrize("token", [".", "u.s.", "%", "%2E", "a%25.b", "##ing", "[CLS]", "…", ""])
def test_escape_is_reversible(token: str) -> None:
    assert unescape_name(escape_token(token)) == token
    assert "." not in escape_token(token)


def test_vector_round_trip_and_id_scheme(vocabulary: list[str]) -> None:
    vector = SparseVector.from_pairs({1012: 0.5, 2149: 1.25, 1999: 3.0}, 30522)  # '.', 'u', 'in'
    for codec in (FeatureCodec(vocabulary), FeatureCodec()):
        assert codec.decode(codec.encode(vector)).as_dict() == vector.as_dict()
    assert FeatureCodec().name(1012) == "t1012"
    assert FeatureCodec(vocabulary).name(1012) == "%2E"


# ---- config -----------------------------------------------------------------------------------------
def test_password_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    config = OpenSearchConfig(hosts="https://h:9200", username="admin", password="s3cr3t-pw", verify_certs=False)
    assert config.hosts == ["https://h:9200"]
    for text in (repr(config), str(config), config.describe(), config.model_dump_json(), str(config.model_dump())):
        assert "s3cr3t-pw" not in text
    assert config.password is not None and config.password.get_secret_value() == "s3cr3t-pw"
    with pytest.raises(ValueError):
        OpenSearchConfig(index="Bad Name")


# ---- queries and filters --------------------------------------------------------------------------------
def test_sparse_query_is_linear_rank_features(vocabulary: list[str]) -> None:
    codec = FeatureCodec(vocabulary)
    query = sparse_query(SparseVector.from_pairs({1012: 0.5, 2149: 2.0}), codec, "splade", filter_clauses({"year": 2020}))
    should = query["bool"]["should"]
    assert should[0] == {"rank_feature": {"field": "splade.%2E", "linear": {}, "boost": 0.5}}
    assert should[1]["rank_feature"]["boost"] == 2.0
    assert query["bool"]["filter"] == [{"term": {"metadata.year": 2020}}]
    assert query["bool"]["minimum_should_match"] == 1


def test_filters() -> None:
    assert filter_clauses({"doc_id": ["a", "b"], "metadata.src": "x"}) == [
        {"terms": {"doc_id": ["a", "b"]}}, {"term": {"metadata.src": "x"}},
    ]
    native = {"range": {"metadata.year": {"gte": 2000}}}
    assert filter_clauses(NativeFilter.of(native)) == [native]
    assert filter_clauses([native]) == [native]
    with pytest.raises(ConfigError, match="got str"):  # the project's error, not a bare TypeError
        filter_clauses("year:2000")
    with pytest.raises(ConfigError):
        filter_clauses(["year:2000"])


def test_filters_translate_the_contracts_meaning() -> None:
    """`title` is the record's title (its exact keyword field), `id` a metadata field like any other key."""
    assert filter_clauses({"title": "Bone density", "id": "7", "source.name": ["a", "b"], "doc_id": 4983}) == [
        {"term": {"title.exact": "Bone density"}},
        {"term": {"metadata.id": "7"}},
        {"terms": {"metadata.source.name": ["a", "b"]}},
        {"term": {"doc_id": "4983"}},
    ]
    assert filter_clauses({"year": ["2020", 2020], "open": True}) == [
        {"terms": {"metadata.year": ["2020", 2020]}}, {"term": {"metadata.open": True}},
    ]
    bad: dict[str, Any]
    for bad in ({"text": "x"}, {"title.x": "x"}, {"": 1}, {"year": 1.5}, {"year": None}, {"tags": []}):
        with pytest.raises(ConfigError):
            filter_clauses(bad)


def test_every_filterable_record_field_has_an_exact_field(vocabulary: list[str]) -> None:
    from splade_connectors.opensearch.index import EXACT_FIELDS
    from splade_connectors.records import TOP_LEVEL_FIELDS

    assert set(EXACT_FIELDS) == TOP_LEVEL_FIELDS - {"text"}
    properties = index_mappings(OpenSearchConfig(index="unit"), FeatureCodec(vocabulary))["properties"]
    assert properties["title"]["fields"]["exact"]["type"] == "keyword" and properties["doc_id"]["type"] == "keyword"


def test_an_index_without_the_exact_title_says_so(vocabulary: list[str], caplog: pytest.LogCaptureFixture) -> None:
    config, codec = OpenSearchConfig(index="unit"), FeatureCodec(vocabulary)
    older = index_mappings(config, codec)
    older["properties"]["title"] = {"type": "text"}
    with caplog.at_level(logging.WARNING):
        check_mapping(older, config, codec)  # still usable: only filters on title are affected
    assert "title.exact" in caplog.text


def test_clause_budget_prunes_to_largest_or_raises(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    vector = SparseVector.from_pairs({int(i): float(w) for i, w in zip(rng.permutation(30000)[:1500], rng.random(1500) + 0.01)})
    with caplog.at_level(logging.WARNING):
        kept = fit_clause_budget(vector, 1024)
    assert kept.nnz == 1024 and "over the clause budget" in caplog.text
    assert kept.values.min() >= np.sort(vector.values)[-1024]
    assert fit_clause_budget(kept, 1024) is kept
    with pytest.raises(TooManyTermsError):
        fit_clause_budget(vector, 1024, "error")


# ---- bad input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [[1.0, float("nan")], [1.0, -0.5], [1.0, 0.0], [float("inf"), 1.0]])
def test_sparse_vector_rejects_bad_weights(values: list[float]) -> None:
    with pytest.raises(SparseVectorError):
        SparseVector(np.array([1, 2]), np.array(values))


class FakeIndices:
    """An index namespace where no index exists yet and creating one succeeds."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def exists(self, index: str) -> bool:
        return index in self.created

    def create(self, index: str, body: dict[str, Any]) -> None:
        self.created.append(index)


class FakeTransport:
    """Records raw requests; answers each `_bulk` with the next canned response."""

    def __init__(self, responses: list[dict[str, Any]]) -> None:
        self.responses = list(responses)
        self.requests: list[tuple[str, str, dict[str, Any], bytes]] = []

    def perform_request(self, method: str, url: str, *, params: dict[str, Any], body: bytes, headers: dict[str, str]) -> Any:
        self.requests.append((method, url, params, body))
        return self.responses.pop(0) if self.responses else {"errors": False}


class FakeClient:
    """Just enough of opensearch-py for open/upsert without a server."""

    def __init__(self, *responses: dict[str, Any]) -> None:
        self.transport = FakeTransport(list(responses) or [{"errors": False}])
        self.indices = FakeIndices()


def _store(client: Any, vocabulary: list[str] | None = None, **options: Any) -> OpenSearchStore:
    config = OpenSearchConfig(index="unit", **{"bulk_writers": 1, **options})
    return OpenSearchStore(config, vocabulary=vocabulary, client=client).open()


def _encoded(doc_id: str, vector: SparseVector) -> EncodedDocument:
    return EncodedDocument(document=Document(id=doc_id, text=f"text of {doc_id}"), sparse=vector)


def _ndjson(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode().splitlines()]


def test_store_satisfies_protocol_and_builds_compact_bulk(vocabulary: list[str]) -> None:
    client = FakeClient()
    store = _store(client, vocabulary)
    assert isinstance(store, SparseStore)
    tiny = np.float32(1e-40)  # float32 subnormal: rank_features refuses it, it cannot change a score
    weight = np.float32(0.1)
    store.upsert([_encoded("d1", SparseVector(np.array([1012, 2000, 2149]), np.array([0.5, weight, tiny]))),
                  _encoded("d2", SparseVector.empty())])
    ((method, url, params, body),) = client.transport.requests
    assert (method, url) == ("POST", "/unit/_bulk") and "items.*.error" in params["filter_path"]
    lines = _ndjson(body)
    assert lines[0] == {"index": {"_id": point_id("d1")}}
    assert lines[1]["splade"] == {"%2E": 0.5, "to": 0.100000001} and lines[1]["doc_id"] == "d1"
    assert np.float32(lines[1]["splade"]["to"]) == weight  # short decimal, same float32
    assert lines[3]["splade"] == {}
    assert b": " not in body and b", " not in body.replace(b"text of", b"")  # compact JSON


def test_compact_weights_read_back_exactly() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([
        rng.random(20000).astype(np.float32) * 5 + np.float32(1e-6),
        rng.lognormal(0, 4, 20000).astype(np.float32),
        np.array([np.finfo(np.float32).tiny, 1e-30, 3.4e38, 1.0, 2.5, 123456.79], dtype=np.float32),
    ])
    short = compact_weights(values)
    assert np.array_equal(np.array(short, dtype=np.float64).astype(np.float32), values)
    text = json.dumps(short[:20000])
    assert len(text) < 0.75 * len(json.dumps(values[:20000].astype(np.float64).tolist()))
    assert compact_weights(np.zeros(0, dtype=np.float32)) == []


def test_requests_are_sized_by_bytes_in_order() -> None:
    ids = [f"d{i}" for i in range(100)]
    lines = [b"x" * (1000 + 10 * i) for i in range(100)]
    total = sum(map(len, lines))
    for writers, low, high in [(1, 1_000, 10**9), (4, 1_000, 10**9), (4, 50_000, 10**9), (1, 1_000, 20_000)]:
        requests = plan_requests(ids, lines, writers=writers, min_bytes=low, max_bytes=high)
        assert [d for r in requests for d in r.doc_ids] == ids  # every document once, in order
        target = min(high, max(low, -(-total // writers)))
        assert all(r.size <= high for r in requests)
        assert all(r.size >= target for r in requests[:-1]) or high < 10**9
        assert len(requests) <= max(writers, -(-total // (high - 2000)))
    assert len(plan_requests(ids, lines, writers=4, min_bytes=1_000, max_bytes=10**9)) == 4
    assert len(plan_requests(ids, lines, writers=4, min_bytes=total, max_bytes=10**9)) == 1  # small batch: one request
    big = plan_requests(["a", "b"], [b"y" * 50_000, b"z"], writers=1, min_bytes=1_000, max_bytes=10_000)
    assert [r.doc_ids for r in big] == [["a"], ["b"]]  # a document larger than a request goes alone


def test_upsert_streams_byte_sized_requests_covering_the_batch(vocabulary: list[str]) -> None:
    client = FakeClient()
    store = _store(client, vocabulary, bulk_min_bytes=1_000, bulk_bytes=20_000, bulk_writers=3)
    rng = np.random.default_rng(5)
    batch = [
        _encoded(f"d{n}", SparseVector(np.sort(rng.choice(30522, 200, replace=False)), rng.random(200).astype(np.float32) + 0.01))
        for n in range(150)
    ]
    store.upsert(batch)
    bodies = [body for _, _, _, body in client.transport.requests]
    assert len(bodies) > 3 and all(len(b) <= 20_000 for b in bodies)
    sent = sorted((line for body in bodies for line in _ndjson(body) if "index" in line), key=lambda a: a["index"]["_id"])
    assert sent == sorted(({"index": {"_id": point_id(e.document.id)}} for e in batch), key=lambda a: a["index"]["_id"])
    sources = {line["doc_id"]: line for body in bodies for line in _ndjson(body) if "doc_id" in line}
    assert all(store.codec.decode(sources[e.document.id]["splade"]).as_dict() == e.sparse.as_dict() for e in batch)


def test_raw_upsert_cannot_sneak_bad_weights(vocabulary: list[str]) -> None:
    client = FakeClient()
    store = _store(client, vocabulary)
    vector = SparseVector(np.array([5]), np.array([1.0]))
    values = np.array([math.nan], dtype=np.float32)
    object.__setattr__(vector, "values", values)  # bypass the type's validation on purpose
    with pytest.raises(StoreError, match="'bad'"):
        store.upsert([_encoded("ok", SparseVector.from_pairs({5: 1.0})), _encoded("bad", vector)])
    with pytest.raises(StoreError, match="outside the vocabulary"):
        store.upsert([_encoded("big", SparseVector.from_pairs({40000: 1.0}))])
    assert client.transport.requests == []  # nothing of a bad batch is sent


def _item(status: int, error: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"status": status}
    if error:
        result["error"] = {"type": error, "reason": f"{error} reason"}
    return {"index": result}


def test_item_errors_name_doc_ids_and_classify(vocabulary: list[str]) -> None:
    batch = [_encoded(d, SparseVector.from_pairs({5: 1.0})) for d in ("a", "b", "c")]
    mixed = FakeClient({"errors": True, "items": [_item(201), _item(400, "mapper_parsing_exception"), _item(429, "es_rejected_execution_exception")]})
    store = _store(mixed, vocabulary)
    with pytest.raises(RejectedDocumentsError) as info:
        store.upsert(batch)
    assert set(info.value.failures) == {"b", "c"} and info.value.others_written
    assert "'b': [400] mapper_parsing_exception" in str(info.value)
    assert not is_transient(info.value)
    throttled = _store(FakeClient({"errors": True, "items": [_item(201), _item(429, "es_rejected_execution_exception"), _item(201)]}))
    with pytest.raises(TransientStoreError) as info2:
        throttled.upsert(batch)
    assert is_transient(info2.value)


def test_outcome_of_parallel_requests_is_classified_once_all_finished() -> None:
    where = "opensearch index 'unit' (http://h:9200)"
    raise_for_outcome(BulkOutcome(), 3, where)  # all written: nothing raised
    rejected = BulkOutcome(items={"b": (400, "mapper_parsing_exception: x")})
    with pytest.raises(RejectedDocumentsError) as info:
        raise_for_outcome(rejected, 3, where)
    assert info.value.others_written and list(info.value.failures) == ["b"]
    # one request timed out: its documents may be unwritten and unnamed -> the whole batch is retried
    lost = BulkOutcome(items={"b": (400, "x")}, request_errors=[(["c", "d"], TransientStoreError("timed out"))])
    with pytest.raises(TransientStoreError, match="retrying the batch"):
        raise_for_outcome(lost, 4, where)
    too_big = BulkOutcome(request_errors=[(["c", "d"], StoreError(f"{where}: bulk failed: HTTP 413 too large"))])
    with pytest.raises(RejectedDocumentsError) as info3:
        raise_for_outcome(too_big, 4, where)
    assert set(info3.value.failures) == {"c", "d"} and not info3.value.transient
    broken = BulkOutcome(request_errors=[(["c"], StoreError("HTTP 400 parse error"))])
    with pytest.raises(StoreError, match="HTTP 400") as info4:
        raise_for_outcome(broken, 4, where)
    assert not isinstance(info4.value, RejectedDocumentsError)
    assert item_failures({"errors": False}, ["a"]) == {}
    with pytest.raises(StoreError, match="1 items for 2 documents"):
        item_failures({"errors": True, "items": [_item(400, "x")]}, ["a", "b"])


def test_bulk_load_settings_restore_what_was_there() -> None:
    config = OpenSearchConfig(index="unit", replicas=2, refresh_interval="5s")
    load, restore = bulk_load_settings({"index.refresh_interval": "30s", "index.number_of_replicas": "1"}, config)
    assert load == {"refresh_interval": "-1", "number_of_replicas": 0}
    assert restore == {"refresh_interval": "30s", "number_of_replicas": "1"}
    # values equal to the bulk-load ones were left by an interrupted load: the configured ones come back
    _, after_crash = bulk_load_settings({"index.refresh_interval": "-1", "index.number_of_replicas": "0"}, config)
    assert after_crash == {"refresh_interval": "5s", "number_of_replicas": 2}
    _, unset = bulk_load_settings({}, config)
    assert unset == {"refresh_interval": "5s", "number_of_replicas": 2}


def test_gzip_only_where_it_pays() -> None:
    assert is_loopback(OpenSearchConfig(hosts=["http://127.0.0.1:9200", "http://localhost:9201"]))
    assert not is_loopback(OpenSearchConfig(hosts=["https://search.example.com:9200"]))
    client = FakeClient()
    store = _store(client, None, compression="gzip")
    store.upsert([_encoded("a", SparseVector.from_pairs({5: 1.0}))])
    ((_, _, _, body),) = client.transport.requests
    assert _ndjson(gzip.decompress(body))[0] == {"index": {"_id": point_id("a")}}


def test_client_errors_map_to_transient_or_permanent() -> None:
    from opensearchpy.exceptions import ConnectionError, ConnectionTimeout, NotFoundError, SSLError, TransportError

    def mapped(error: BaseException) -> bool:
        return is_transient(translate(error, "opensearch index 'unit' (http://h:9200)", "bulk"))

    assert mapped(ConnectionError("N/A", "refused", None))
    assert mapped(ConnectionTimeout("TIMEOUT", "slow", None))
    for status in (429, 502, 503, 504):
        assert mapped(TransportError(status, "x", {}))
    assert mapped(TransientStoreError("x"))
    assert not mapped(TransportError(400, "bad", {}))
    assert not mapped(NotFoundError(404, "missing", {}))
    assert not mapped(SSLError("N/A", "cert", None))
    assert not mapped(ValueError("x"))


def test_mapping_mismatch_is_clear(vocabulary: list[str]) -> None:
    config = OpenSearchConfig(index="unit")
    codec = FeatureCodec(vocabulary)
    check_mapping(index_mappings(config, codec), config, codec)
    wrong = {"properties": {"splade": {"type": "float"}, "text": {"type": "text"}}}
    with pytest.raises(ConfigMismatchError, match="'splade' is 'float'.*'doc_id' is missing"):
        check_mapping(wrong, config, codec)
    with pytest.raises(ConfigMismatchError, match="feature naming"):
        check_mapping(index_mappings(config, FeatureCodec()), config, codec)


# ---- fusion ---------------------------------------------------------------------------------------------
def _hits(*ids: str) -> list[Hit]:
    return [Hit(id=d, score=10.0 - n) for n, d in enumerate(ids)]


def test_rrf_matches_hand_computation() -> None:
    fused = rrf_fuse([_hits("a", "b", "c"), _hits("c", "d", "a")], k=60)
    expected = {"a": 1 / 61 + 1 / 63, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 62}
    assert [h.id for h in fused] == ["a", "c", "b", "d"]  # ties keep first appearance
    assert {h.id: h.score for h in fused} == pytest.approx(expected)
    weighted = rrf_fuse([_hits("a", "b"), _hits("b", "a")], k=1, weights=[2.0, 1.0], top_k=1)
    assert [(h.id, h.score) for h in weighted] == [("a", pytest.approx(2 / 2 + 1 / 3))]
    with pytest.raises(ValueError):
        rrf_fuse([_hits("a")], k=0)


def test_linear_fusion_min_max() -> None:
    one = [Hit(id="a", score=10.0), Hit(id="b", score=6.0), Hit(id="c", score=2.0)]
    two = [Hit(id="c", score=30.0), Hit(id="a", score=10.0)]
    fused = linear_fuse([one, two], weights=[0.7, 0.3])
    assert {h.id: h.score for h in fused} == pytest.approx({"a": 0.7, "b": 0.35, "c": 0.3})
    assert linear_fuse([[Hit(id="x", score=3.0)]])[0].score == 1.0


def test_cli_options_build_config_without_leaking_password(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from splade_connectors.cli.stores import add_store_options, store_config_from_args

    parser = argparse.ArgumentParser()
    add_store_options(parser)
    monkeypatch.setenv("OPENSEARCH_PASSWORD", "env-s3cret")
    args = parser.parse_args(["--store", "opensearch", "--opensearch-url", "https://os:9200",
                              "--opensearch-user", "admin", "--no-verify-certs", "--index", "docs"])
    config = store_config_from_args(args)
    assert config.hosts == ["https://os:9200"] and config.index == "docs" and not config.verify_certs  # type: ignore[attr-defined]  # an OpenSearchConfig behind the base type
    assert config.password is not None and config.password.get_secret_value() == "env-s3cret"  # type: ignore[attr-defined]  # an OpenSearchConfig behind the base type
    assert "env-s3cret" not in repr(config) + config.describe()


# ---- vectorised rank_features JSON ----------------------------------------------------------------------
def test_feature_json_reads_back_to_the_same_vectors(vocabulary: list[str]) -> None:
    rng = np.random.default_rng(11)
    vectors = [SparseVector.empty()]
    for _ in range(60):
        ids = np.sort(rng.choice(30522, size=int(rng.integers(1, 400)), replace=False))
        vectors.append(SparseVector(ids, (rng.lognormal(-1, 2, ids.size) + 1e-6).astype(np.float32)))
    quote, backslash = vocabulary.index('"'), vocabulary.index("\\")
    vectors.append(SparseVector.from_pairs({quote: 1.5, backslash: 0.25, 1012: 3.0}))  # keys that need JSON escapes
    extremes = np.array([np.finfo(np.float32).tiny, 1e-30, 9.999999e-9, 1e-8, 0.1, 1.0, 9.9999994, 123456.79, 3.4e38],
                        dtype=np.float32)
    vectors.append(SparseVector(np.arange(extremes.size), extremes))
    for codec in (FeatureCodec(vocabulary), FeatureCodec()):
        objects = FeatureJson(codec).objects([(v.indices, v.values) for v in vectors])
        assert objects[0] == b"{}"
        for vector, text in zip(vectors, objects):
            decoded = json.loads(text)
            assert codec.decode(decoded) == vector  # every weight reads back to the same float32
    numbers = format_weights(extremes)
    assert [bytes(row).decode() for row in numbers[[0, 4, 5, 8]]] == ["117549435e-46", "100000001e-09", "100000000e-08", "339999995e+30"]


def test_batch_lines_name_the_bad_document(vocabulary: list[str]) -> None:
    store = OpenSearchStore(OpenSearchConfig(index="unit"), vocabulary=vocabulary)  # no I/O: lines are built offline
    good = _encoded("good", SparseVector.from_pairs({2000: 1.0}))
    lines = store.bulk_lines([good, _encoded("empty", SparseVector.empty())])
    source = _ndjson(b"".join(lines))[3]
    assert source == {"doc_id": "empty", "text": "text of empty", "splade": {}}
    with pytest.raises(RejectedDocumentsError) as info:
        store.bulk_lines([good, _encoded("far", SparseVector.from_pairs({30522: 1.0}))])
    assert list(info.value.failures) == ["far"] and "outside the vocabulary" in info.value.failures["far"]

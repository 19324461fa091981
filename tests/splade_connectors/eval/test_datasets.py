"""Dataset loaders: local BEIR folders, local NanoBEIR exports (parquet/jsonl), Hub names failing fast offline."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from splade_connectors.errors import DatasetError
from splade_connectors.eval.datasets import (
    HubUnavailableError,
    load_beir_folder,
    load_nanobeir,
    load_nanobeir_export,
    load_retrieval_dataset,
    nanobeir_split,
)

CORPUS = [
    {"_id": "d1", "title": "Cats", "text": "cats purr"},
    {"_id": "d2", "title": "", "text": "dogs bark"},
    {"_id": "d3", "title": "Empty", "text": ""},
]
QUERIES = [{"_id": "q1", "text": "purring"}, {"_id": "q2", "text": "barking"}, {"_id": "q3", "text": "unjudged"}]


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    _write_jsonl(tmp_path / "corpus.jsonl", CORPUS)
    _write_jsonl(tmp_path / "queries.jsonl", QUERIES)
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t1\nq2\td2\t1\n", encoding="utf-8")
    return tmp_path


def test_beir_folder_keeps_grades_and_prepends_titles(beir_dir: Path) -> None:
    ds = load_beir_folder(beir_dir)
    assert list(ds.corpus) == ["d1", "d2"]  # empty text dropped
    assert ds.qrels == {"q1": {"d1": 2, "d2": 1}, "q2": {"d2": 1}}
    assert ds.with_title and ds.document_text("d1") == "Cats\ncats purr"
    assert ds.document_text("d2") == "dogs bark"
    assert ds.eval_query_ids() == ["q1", "q2"]
    assert load_beir_folder(beir_dir, with_title=False).document_text("d1") == "cats purr"


def test_relevance_threshold(beir_dir: Path) -> None:
    ds = load_beir_folder(beir_dir, relevance_threshold=2)
    assert ds.relevant_docs() == {"q1": {"d1"}}
    assert ds.eval_query_ids() == ["q1"]


def test_beir_folder_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a BEIR folder"):
        load_beir_folder(tmp_path)


def test_shared_beir_data(data_dir: Path) -> None:
    dl19 = load_retrieval_dataset(data_dir / "beir" / "msmarco-dl19-subset", relevance_threshold=2)
    assert len(dl19.corpus) == 5000 and len(dl19.queries) == 43
    assert {g for docs in dl19.qrels.values() for g in docs.values()} <= {0, 1, 2, 3}
    assert len(dl19.eval_query_ids()) == 43


def _nano_rows() -> dict[str, list[dict[str, object]]]:
    return {
        "corpus": [{"_id": "d1", "text": "cats purr", "title": "Cats"}, {"_id": "d2", "text": "dogs bark"}],
        "queries": [{"_id": "q1", "text": "purring"}, {"_id": "q2", "text": "barking"}],
        "qrels": [{"query-id": "q1", "corpus-id": "d1"}, {"query-id": "q2", "corpus-id": ["d2"]}],
    }


def test_nanobeir_export_jsonl(tmp_path: Path) -> None:
    for subset, rows in _nano_rows().items():
        _write_jsonl(tmp_path / f"{subset}.jsonl", rows)
    ds = load_retrieval_dataset(tmp_path)
    assert ds.corpus["d1"] == {"title": "Cats", "text": "cats purr"}
    assert ds.document_text("d1") == "cats purr"  # NanoBEIR: text only by default, like sentence-transformers
    assert ds.relevant_docs() == {"q1": {"d1"}, "q2": {"d2"}}
    assert load_nanobeir_export(tmp_path, with_title=True).document_text("d1") == "Cats\ncats purr"


def test_nanobeir_export_parquet_per_split(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    for subset, rows in _nano_rows().items():
        (tmp_path / subset).mkdir()
        columns = {key: [r.get(key) for r in rows] for key in rows[0]}
        if subset == "qrels":  # parquet columns have one type: plain ids here, with a score column
            columns = {"query-id": ["q1", "q2"], "corpus-id": ["d1", "d2"], "score": [1, 1]}
        pq.write_table(pa.table(columns), tmp_path / subset / "NanoSciFact.parquet")
    ds = load_nanobeir_export(tmp_path, split="NanoSciFact")
    assert ds.name == "NanoSciFact"
    assert list(ds.corpus) == ["d1", "d2"] and ds.relevant_docs() == {"q1": {"d1"}, "q2": {"d2"}}


def test_nanobeir_split_names() -> None:
    assert nanobeir_split("scifact") == "NanoSciFact"
    assert nanobeir_split("NanoNFCorpus") == "NanoNFCorpus"
    assert nanobeir_split("QuoraRetrieval") == "NanoQuoraRetrieval"
    with pytest.raises(DatasetError, match="unknown NanoBEIR"):
        nanobeir_split("trec-covid")


def test_hub_offline_fails_fast_and_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(HubUnavailableError, match="NanoBEIR-en") as info:
        load_retrieval_dataset("scifact")
    assert time.perf_counter() - started < 15
    assert "local folder" in str(info.value)


def test_hub_unreachable_fails_fast_without_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    started = time.perf_counter()
    with pytest.raises(HubUnavailableError, match="not reachable"):
        load_nanobeir("nfcorpus")
    assert time.perf_counter() - started < 10


def test_an_export_with_a_missing_column_is_a_dataset_error(tmp_path: Path) -> None:
    from splade_connectors.errors import SpladeError

    for subset, rows in {"corpus": [{"text": "no id"}], "queries": [{"_id": "q", "text": "t"}], "qrels": [{"query-id": "q", "corpus-id": "1"}]}.items():
        (tmp_path / f"{subset}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DatasetError, match="a row has no '_id' column") as info:
        load_nanobeir_export(tmp_path)
    assert isinstance(info.value, SpladeError)

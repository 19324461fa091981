"""Chunking, pruning and query-weights options, shared by ingest, search, eval and tune."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splade_connectors.cli import build_parser, main
from splade_connectors.cli.model import encode_options
from trainer.model import SpladeModel
from trainer.pruning import Pruning
from trainer.static import SparseStaticEmbedding

from .conftest import DOCS

COMMANDS = {
    "ingest": ["--input", "x.jsonl"],
    "search": ["-q", "x"],
    "eval": ["--beir-dir", "x"],
    "tune": ["--beir-dir", "x"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_takes_the_same_model_options(command: str) -> None:
    args = build_parser().parse_args([
        command, *COMMANDS[command], "--chunk-tokens", "128", "--chunk-stride", "96", "--prune", "max_ratio=0.1",
        "--query-prune", "top_k=16", "--query-weights", "idf.json",
    ])
    documents, queries = encode_options(args)
    assert (documents.chunk_tokens, documents.chunk_stride) == (128, 96)
    assert documents.prune == Pruning(rule="max_ratio", value=0.1) and queries.prune == Pruning(rule="top_k", value=16)
    assert queries.chunk_tokens is None and args.query_weights == "idf.json"


def test_a_bad_pruning_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--beir-dir", "x", "--prune", "max_ratio=1.5"]) == 2  # the CLI's usage errors return 2
    assert "max_ratio needs a value in (0, 1), got 1.5" in capsys.readouterr().err


def test_a_window_larger_than_the_model_is_one_error_line(tiny_beir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--beir-dir", str(tiny_beir), "--backends", "exact", "--chunk-tokens", "1000", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: chunk_tokens (1000) exceeds the model's window of 512 tokens"


def test_eval_with_chunking_and_pruning(tiny_beir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["eval", "--beir-dir", str(tiny_beir), "--backends", "exact", "--json", "--no-progress", "--device", "cpu"]
    assert main([*base, "--max-length", "16"]) == 0
    truncated = json.loads(capsys.readouterr().out)
    long_docs = truncated["datasets"]["tiny"]["truncated_documents"]
    assert long_docs >= 3
    assert truncated["datasets"]["tiny"]["chunked_documents"] == 0

    assert main([*base, "--max-length", "16", "--chunk-tokens", "16", "--chunk-stride", "10"]) == 0
    chunked = json.loads(capsys.readouterr().out)
    assert chunked["datasets"]["tiny"]["chunked_documents"] == long_docs
    assert chunked["datasets"]["tiny"]["truncated_documents"] == 0
    # windows see the whole text: more document terms than the first 16 tokens give
    assert chunked["results"]["tiny"]["exact"]["corpus_active_dims"] > truncated["results"]["tiny"]["exact"]["corpus_active_dims"]

    assert main([*base, "--prune", "top_k=5", "--query-prune", "top_k=3"]) == 0
    pruned = json.loads(capsys.readouterr().out)["results"]["tiny"]["exact"]
    assert pruned["corpus_active_dims"] == 5 and pruned["query_active_dims"] == 3


def test_ingest_reports_chunked_documents_and_search_prunes_queries(tiny_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--qdrant-path", str(tmp_path / "qdrant"), "--collection", "tiny"]
    assert main(["ingest", "--input", str(tiny_beir), *store, "--chunk-tokens", "16", "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stored"] == len(DOCS) and report["chunked"] >= 3 and report["truncated"] == 0
    assert main(["search", *store, "-q", "who is cornelius in the book of acts", "--query-prune", "top_k=2", "--explain",
                 "--explain-terms", "10", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["results"][0]["hits"]
    assert hits[0]["id"] == "d1" and len(hits[0]["terms"]) <= 2  # only 2 query terms can match


def test_query_weights_make_any_model_inference_free(tiny_beir: Path, trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tokenizer = SpladeModel.from_pretrained(trained_model_dir).tokenizer
    vocab = tokenizer.get_vocab()
    weights = SparseStaticEmbedding(tokenizer).weight.detach() * 0
    for token, value in {"cornelius": 3.0, "acts": 2.0, "capital": 2.5, "france": 3.0, "plants": 2.0, "sugar": 2.0, "tides": 3.0}.items():
        weights[vocab[token]] = value
    SparseStaticEmbedding(tokenizer, weights).to_idf_json(tmp_path / "idf.json")
    assert main(["eval", "--beir-dir", str(tiny_beir), "--backends", "exact", "--json", "--no-progress",
                 "--query-weights", str(tmp_path / "idf.json")]) == 0
    result = json.loads(capsys.readouterr().out)["results"]["tiny"]["exact"]
    # each query is exactly its weighted tokens: 2 + 2 + 2 + 1 terms over 4 queries
    assert result["query_active_dims"] == pytest.approx(7 / 4)
    assert result["ndcg@10"] > 0.8


def test_dtype_choices_are_the_cores_precision_routes() -> None:
    from splade_connectors.cli.model import DTYPES
    from trainer.precision import CHOICES

    assert DTYPES == CHOICES

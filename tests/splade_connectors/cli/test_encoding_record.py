"""The command line on a collection written by another encoding (embedded engine): `ingest` refuses it in one line
naming `--reencode` (count unchanged) and re-encodes with it; `search` refuses another model in one line, and with
`--allow-model-mismatch` searches with a warning on stderr."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from splade_connectors.registry import open_store, store_config
from tests.splade_connectors.cli.conftest import CliRun, run_process
from trainer.model import SpladeModel


@pytest.fixture(scope="module")
def other_model_dir(splade_model: SpladeModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model with one weight changed, saved: another fingerprint, the same vocabulary."""
    model = copy.deepcopy(splade_model)
    with torch.no_grad():
        next(model.mlm.parameters()).add_(0.01)
    directory = tmp_path_factory.mktemp("other-model")
    model.save(directory)
    return directory


def _count(path: Path) -> int:
    with open_store(store_config("qdrant", path=str(path), collection="docs"), create=False) as store:
        return store.count()


def test_cli_refuses_mixed_encodings_and_reencodes(
    tiny_beir: Path, tmp_path: Path, other_model_dir: Path, cli: Callable[..., CliRun]
) -> None:
    path = tmp_path / "qdrant"
    store = ["--qdrant-path", str(path), "--collection", "docs"]
    ingest = ["ingest", "--input", str(tiny_beir), *store, "--no-progress", "--device", "cpu"]
    assert cli(*ingest).code == 0
    assert _count(path) == 5

    line = cli(*ingest, "--top-k-terms", "16").error_line()
    assert "top_k=None" in line and "top_k=16" in line and "--reencode" in line and "new collection" in line
    assert _count(path) == 5

    search = ["search", *store, "-q", "who is cornelius", "--json", "--device", "cpu"]
    done = cli(*search, "--top-k-terms", "4")  # query options never mismatch
    assert done.code == 0 and json.loads(done.out)["results"][0]["hits"][0]["id"] == "d1"
    line = cli(*search, "--model", str(other_model_dir)).error_line()
    assert "another model" in line and "--allow-model-mismatch" in line

    warned = run_process([*search, "--model", str(other_model_dir), "--allow-model-mismatch"], cwd=tmp_path)
    assert warned.code == 0, warned.err
    assert json.loads(warned.out)["results"]  # stdout stays clean JSON
    assert "WARNING" in warned.err and "another model" in warned.err

    done = cli(*ingest, "--top-k-terms", "16", "--reencode", "--json")
    assert done.code == 0 and json.loads(done.out)["stored"] == 5
    assert cli(*ingest, "--top-k-terms", "16").code == 0  # the collection is now of the new encoding


def test_eval_records_the_encoding_of_the_collections_it_keeps(
    tiny_beir: Path, tmp_path: Path, other_model_dir: Path, cli: Callable[..., CliRun]
) -> None:
    path = tmp_path / "qdrant"
    done = cli("eval", "--beir-dir", str(tiny_beir), "--backends", "qdrant", "--qdrant-path", str(path), "--keep",
               "--json", "--no-progress", "--device", "cpu")
    assert done.code == 0, done.err
    (kept,) = [p.name for p in (path / "collections").iterdir()]
    with open_store(store_config("qdrant", path=str(path), collection=kept), create=False) as store:
        record = store.recorded_encoding()
        assert record is not None and record["encoding"]["with_title"] and record["encoding"]["model"].startswith("BertForMaskedLM:")
    line = cli("search", "--qdrant-path", str(path), "--collection", kept, "-q", "cornelius", "--model", str(other_model_dir)).error_line()
    assert "another model" in line

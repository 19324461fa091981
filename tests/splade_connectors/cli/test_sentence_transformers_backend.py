"""`--encoder-backend sentence-transformers`: the same evaluation as the default encoder, one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splade_connectors.cli import main

pytest.importorskip("sentence_transformers")


def test_eval_with_the_sentence_transformers_backend_matches_the_default(tiny_beir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["eval", "--beir-dir", str(tiny_beir), "--backends", "exact", "--json", "--no-progress", "--device", "cpu", "--max-length", "16"]
    assert main(base) == 0
    ours = json.loads(capsys.readouterr().out)
    assert main([*base, "--encoder-backend", "sentence-transformers"]) == 0
    theirs = json.loads(capsys.readouterr().out)
    assert theirs["datasets"]["tiny"]["truncated_documents"] == ours["datasets"]["tiny"]["truncated_documents"] >= 3
    expected, found = ours["results"]["tiny"]["exact"], theirs["results"]["tiny"]["exact"]
    assert found.keys() == expected.keys() and "ndcg@10" in found
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, abs=1e-4), name

@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--chunk-tokens", "16"], "error: --chunk-tokens: not available with --encoder-backend sentence-transformers"),
        (["--dtype", "int8"], "error: --dtype int8: with --encoder-backend sentence-transformers use fp32, bf16 or fp16"),
    ],
)
def test_options_the_backend_lacks_are_one_error_line(
    tiny_beir: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = ["eval", "--beir-dir", str(tiny_beir), "--backends", "exact", "--no-progress", "--encoder-backend", "sentence-transformers"]
    assert main([*args, *extra]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(message)

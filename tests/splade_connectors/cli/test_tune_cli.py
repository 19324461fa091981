"""`splade-connectors tune` end to end on a tiny BEIR folder, sizes from an embedded Qdrant on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splade_connectors.cli import main


def test_tune_writes_table_json_and_png(tiny_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main([
        "tune", "--beir-dir", str(tiny_beir), "--settings", "top_k=4,top_k=64,max_ratio=0.5", "--output-dir", str(out),
        "--no-progress", "--json", "--device", "cpu",
    ])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "tune.json").read_text(encoding="utf-8"))
    assert printed == saved
    assert [r["setting"] for r in saved["rows"]] == ["unpruned", "top_k=4", "top_k=64", "max_ratio=0.5"]
    assert saved["stores"] == ["qdrant"] and saved["apply_to"] == "documents" and saved["max_loss"] == 0.005
    rows = {r["setting"]: r for r in saved["rows"]}
    assert all(r["index_bytes"]["qdrant"] > 0 for r in saved["rows"])
    assert rows["top_k=4"]["index_bytes"]["qdrant"] < rows["unpruned"]["index_bytes"]["qdrant"]
    assert rows["top_k=4"]["corpus_active_dims"] == 4
    within = [r for r in saved["rows"][1:] if r["within_budget"]]
    if within:
        assert saved["recommended"] == min(within, key=lambda r: r["index_bytes"]["qdrant"])["setting"]
    else:
        assert saved["recommended"] is None
    assert "| unpruned |" in (out / "tune.md").read_text(encoding="utf-8")
    assert (out / "tune.png").read_bytes().startswith(b"\x89PNG")


def test_tune_query_side_without_stores(tiny_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([
        "tune", "--beir-dir", str(tiny_beir), "--rules", "top_k", "--apply-to", "queries", "--stores", "none",
        "--output-dir", str(tmp_path / "q"), "--no-progress", "--json", "--max-loss", "0.5",
    ])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stores"] == [] and all(r["index_bytes"] == {} for r in report["rows"])
    base = report["rows"][0]
    for row in report["rows"][1:]:
        assert row["corpus_active_dims"] == base["corpus_active_dims"]  # documents untouched
        assert row["query_active_dims"] <= row["value"]
    within = [r for r in report["rows"][1:] if r["within_budget"]]
    assert report["recommended"] == (min(within, key=lambda r: r["query_active_dims"])["setting"] if within else None)


def test_tune_option_errors(tiny_beir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--beir-dir", str(tiny_beir), "--stores", "elastic", "--no-progress"]) == 2
    assert "unknown store 'elastic'" in capsys.readouterr().err
    assert main(["tune", "--beir-dir", str(tiny_beir), "--max-loss", "2", "--no-progress"]) == 2
    assert "--max-loss must be in [0, 1)" in capsys.readouterr().err

"""The CLI end to end: the offline demo, and ingest + search against an embedded Qdrant folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splade_connectors.cli import main
from splade_connectors.cli.demo import DEMO_QUERIES

pytestmark = pytest.mark.live


def test_demo_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ingest"]["accepted"] == out["ingest"]["stored"] >= 40
    assert [r["query"] for r in out["results"]] == list(DEMO_QUERIES)
    for result in out["results"]:
        top = result["hits"][0]
        assert top["id"] == DEMO_QUERIES[result["query"]]
        assert top["terms"] and all(t["contribution"] > 0 for t in top["terms"])


def test_demo_table_with_own_query(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--query", "how long is a marathon", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert 'query: "how long is a marathon"' in out and "sport-02" in out and "marathon(" in out


def test_ingest_then_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "docs.jsonl"
    rows = [
        {"id": "a", "body": "Penguins live in the southern hemisphere and cannot fly.", "kind": "bird"},
        {"id": "b", "body": "The violin has four strings tuned in fifths.", "kind": "music"},
        {"id": "c", "body": "Sourdough bread rises thanks to wild yeast.", "kind": "food"},
        {"id": "d", "body": "", "kind": "broken"},
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n", encoding="utf-8")
    store = ["--qdrant-path", str(tmp_path / "qdrant"), "--collection", "notes"]

    assert main(["ingest", "--input", str(corpus), "--id-field", "id", "--text-field", "body", *store, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accepted"] == 3 and report["stored"] == 3 and report["invalid"] == 2

    assert main(["search", *store, "--query", "which birds cannot fly", "--query", "string instruments", "--explain", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert results[0]["hits"][0]["id"] == "a" and results[1]["hits"][0]["id"] == "b"
    assert results[0]["hits"][0]["terms"] and results[0]["hits"][0]["metadata"] == {"kind": "bird"}

    assert main(["search", *store, "--query", "which birds cannot fly", "--filter", "kind=music", "--json"]) == 0
    filtered = json.loads(capsys.readouterr().out)["results"][0]["hits"]
    assert [h["id"] for h in filtered] in ([], ["b"])

    # a second ingest is idempotent; a mismatching collection config is refused
    assert main(["ingest", "--input", str(corpus), "--id-field", "id", "--text-field", "body", *store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stored"] == 3
    assert main(["search", *store, "--idf", "--query", "birds"]) == 2
    assert "IDF modifier" in capsys.readouterr().err

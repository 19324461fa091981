"""The CLI end to end: the offline demo (embedded engine), and ingest + search on every Qdrant backend."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from splade_connectors.cli import main
from splade_connectors.cli.demo import DEMO_QUERIES
from tests.live_stores import record_qdrant_backend

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


@pytest.fixture(params=["server", "edge", "local"])
def store_options(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """The same commands on a real server, the embedded engine (`--qdrant-path`) and local mode."""
    collection = ["--collection", f"notes-{uuid.uuid4().hex[:8]}"]
    if request.param == "server":
        live = request.getfixturevalue("qdrant_server_store")
        options = ["--qdrant-url", live.url, *collection]
        return options + (["--qdrant-grpc-port", str(live.grpc_port)] if live.grpc_port else [])
    record_qdrant_backend(str(request.param))
    local = ["--qdrant-local-mode"] if request.param == "local" else []
    return ["--qdrant-path", str(tmp_path / "qdrant"), *local, *collection]


def test_ingest_then_search(tmp_path: Path, store_options: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "docs.jsonl"
    rows = [
        {"id": "a", "body": "Penguins live in the southern hemisphere and cannot fly.", "kind": "bird"},
        {"id": "b", "body": "The violin has four strings tuned in fifths.", "kind": "music"},
        {"id": "c", "body": "Sourdough bread rises thanks to wild yeast.", "kind": "food"},
        {"id": "4983", "body": "Ostriches are birds that run fast but cannot fly.", "kind": "bird"},
        {"id": "d", "body": "", "kind": "broken"},
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n", encoding="utf-8")
    store = [*store_options, "--payload-index", "kind"]

    assert main(["ingest", "--input", str(corpus), "--id-field", "id", "--text-field", "body", *store, "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accepted"] == 4 and report["stored"] == 4 and report["invalid"] == 2

    assert main(["search", *store, "--query", "which birds cannot fly", "--query", "string instruments", "--explain", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert {h["id"] for h in results[0]["hits"][:2]} == {"a", "4983"} and results[1]["hits"][0]["id"] == "b"
    top = results[0]["hits"][0]
    assert top["terms"] and top["metadata"] == {"kind": "bird"}

    assert main(["search", *store, "--query", "which birds cannot fly", "--filter", "kind=music", "--json"]) == 0
    filtered = json.loads(capsys.readouterr().out)["results"][0]["hits"]
    assert [h["id"] for h in filtered] in ([], ["b"])
    # a numeric-looking document id is still a string id: the filter finds it
    assert main(["search", *store, "--query", "which birds cannot fly", "--filter", "doc_id=4983", "--json"]) == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)["results"][0]["hits"]] == ["4983"]

    # a second ingest is idempotent; a mismatching collection config is refused
    assert main(["ingest", "--input", str(corpus), "--id-field", "id", "--text-field", "body", *store, "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["stored"] == 4
    assert main(["search", *store, "--idf", "--query", "birds"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: qdrant collection") and "IDF modifier is off" in errors[0]

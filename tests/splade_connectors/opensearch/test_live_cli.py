"""The CLI against the live OpenSearch: ingest a JSONL file, then search it with --explain, filters and JSON."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from splade_connectors.cli import main

pytestmark = pytest.mark.live


def _store_args(live: Any, index: str) -> list[str]:
    args = ["--store", "opensearch", "--opensearch-url", live.url, "--index", index]
    if live.username:
        args += ["--opensearch-user", live.username]
    if not live.verify_certs:
        args += ["--no-verify-certs"]
    return args


def test_ingest_then_search_through_the_cli(
    opensearch_store: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if opensearch_store.password:
        monkeypatch.setenv("OPENSEARCH_PASSWORD", opensearch_store.password)
    corpus = tmp_path / "docs.jsonl"
    rows = [
        {"_id": "us", "text": "U.S. policy on tariffs changed in 2018.", "region": "americas"},
        {"_id": "violin", "text": "The violin has four strings tuned in fifths.", "region": "europe"},
        {"_id": "bread", "text": "Sourdough bread rises thanks to wild yeast.", "region": "europe"},
        {"_id": "", "text": "a record without an id"},
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    store = _store_args(opensearch_store, f"cli-{uuid.uuid4().hex[:8]}")
    try:
        assert main(["ingest", "--input", str(corpus), *store, "--json", "--no-progress"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["accepted"] == 3 and report["stored"] == 3 and report["invalid"] == 1

        assert main(["search", *store, "-q", "u.s. tariffs", "-q", "string instruments", "--explain", "--json"]) == 0
        results = json.loads(capsys.readouterr().out)["results"]
        assert results[0]["hits"][0]["id"] == "us" and results[1]["hits"][0]["id"] == "violin"
        assert results[0]["hits"][0]["terms"]

        assert main(["search", *store, "-q", "string instruments", "--filter", "region=americas", "--json"]) == 0
        assert [h["id"] for h in json.loads(capsys.readouterr().out)["results"][0]["hits"]] in ([], ["us"])
    finally:
        from opensearchpy import OpenSearch

        client = OpenSearch(hosts=[opensearch_store.url], http_auth=(opensearch_store.username, opensearch_store.password) if opensearch_store.username else None, verify_certs=opensearch_store.verify_certs)
        client.indices.delete(index=store[store.index("--index") + 1], ignore_unavailable=True)

"""The examples in examples/ run as documented (in process, with `runpy`, on small inputs)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

import pytest

from splade_connectors import search
from tests.conftest import write_beir_folder
from tests.live_stores import LiveStore

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run_example(name: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, Any]:
    monkeypatch.setattr(sys, "argv", [name, *args])
    return runpy.run_path(str(EXAMPLES / name), run_name="__main__")


def test_qdrant_hybrid_query(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _run_example("qdrant_hybrid_query.py", monkeypatch, "why do onions make my eyes water", "--top-k", "3")
    out = capsys.readouterr().out
    assert "sparse (SPLADE)" in out and "fused (rrf, k=60)" in out and "cook-03" in out


def test_qdrant_ingest_beir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    docs = {f"d{i}": (f"title {i}", f"document number {i} about mars and the moon") for i in range(5)}
    folder = write_beir_folder(tmp_path / "tiny", docs, {"q1": "mars"}, [("q1", "d1", 1)])
    monkeypatch.chdir(tmp_path)  # the example's checkpoint file goes to the working directory
    _run_example("qdrant_ingest_beir.py", monkeypatch, str(folder), "--path", str(tmp_path / "qdrant"))
    assert "5 documents (0 skipped by resume, 0 invalid)" in capsys.readouterr().out
    _run_example("qdrant_ingest_beir.py", monkeypatch, str(folder), "--path", str(tmp_path / "qdrant"))
    assert "holds 5" in capsys.readouterr().out  # resumed: nothing written twice


@pytest.mark.live
def test_opensearch_hybrid(opensearch_store: LiveStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPENSEARCH_URL", str(opensearch_store.url))
    for name, value in (("OPENSEARCH_USERNAME", opensearch_store.username), ("OPENSEARCH_PASSWORD", opensearch_store.password)):
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    _run_example("opensearch_hybrid.py", monkeypatch)
    out = capsys.readouterr().out
    assert "3 documents, 3 in the index" in out and "Hybrid RRF(k=60)" in out


def test_async_service_answers_what_search_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fastapi", reason="the async service example needs fastapi (in requirements/ci.lock)")
    from starlette.testclient import TestClient

    for name in ("QDRANT_URL", "OPENSEARCH_URL"):
        monkeypatch.delenv(name, raising=False)  # the embedded engine with the sample corpus
    service = runpy.run_path(str(EXAMPLES / "async_service.py"))
    app = service["create_app"](service["config_from_env"]())
    with TestClient(app) as client:
        answer = client.get("/search", params={"q": "why is mars red", "k": 3})
        assert answer.status_code == 200
        expected = search(app.state.store, app.state.encoder, ["why is mars red"], top_k=3)[0]
        assert [(h["id"], h["score"]) for h in answer.json()["hits"]] == [(h.id, h.score) for h in expected]
        filtered = client.get("/search", params={"q": "why is mars red", "topic": "cooking"}).json()["hits"]
        assert filtered and all(h["id"].startswith("cook-") for h in filtered)
        bad = client.get("/search", params={"q": "mars", "k": 0})
        assert bad.status_code == 400 and "top_k must be >= 1" in bad.json()["detail"]

"""The whole evaluation of a NanoBEIR-sized dataset (msmarco-dl19-subset) through all three backends.

Run: `pytest -m slow tests/splade_connectors/eval/test_full_run.py -s` (needs a live OpenSearch; see
tests/live_stores.py). Prints the wall time and the results table.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from splade_connectors.eval.datasets import load_beir_folder
from splade_connectors.eval.report import markdown_table, write_all
from splade_connectors.eval.runner import evaluate
from trainer.encoder import SpladeEncoder


@pytest.mark.slow
@pytest.mark.live
def test_dl19_through_all_backends(data_dir: Path, encoder: SpladeEncoder, opensearch_store, qdrant_store, tmp_path: Path) -> None:
    dataset = load_beir_folder(data_dir / "beir" / "msmarco-dl19-subset", relevance_threshold=2)
    options = {
        "qdrant": {"url": qdrant_store.url, "api_key": qdrant_store.api_key},
        "opensearch": {
            "url": opensearch_store.url, "username": opensearch_store.username,
            "password": opensearch_store.password, "verify_certs": opensearch_store.verify_certs,
        },
    }
    started = time.perf_counter()
    report = evaluate(encoder, [dataset], ["exact", "qdrant", "opensearch"], backend_options=options)
    seconds = time.perf_counter() - started
    write_all(report, tmp_path)
    print(f"\nmsmarco-dl19-subset, 3 backends: {seconds:.1f} s wall; timings {report.timings}")
    print(markdown_table(report))
    results = report.results["msmarco-dl19-subset"]
    for key, value in results["exact"].items():
        assert results["qdrant"][key] == pytest.approx(value, abs=1e-6), key
    assert abs(results["opensearch"]["ndcg@10"] - results["exact"]["ndcg@10"]) <= 0.01
    assert abs(results["opensearch"]["graded_ndcg@10"] - results["exact"]["graded_ndcg@10"]) <= 0.01

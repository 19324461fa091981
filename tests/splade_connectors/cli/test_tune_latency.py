"""`tune --latency` through live stores on a tiny BEIR folder: the recommendation honours the budgets, and the
flags it prints parse with the real `ingest` / `search` parsers and rebuild the configuration it measured."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from splade_connectors.cli import build_parser, main
from splade_connectors.cli.model import encode_options
from splade_connectors.cli.stores import opensearch_options, qdrant_options, store_config_from_args
from splade_connectors.errors import ConfigMismatchError
from splade_connectors.eval.datasets import RetrievalDataset
from splade_connectors.eval.encoding import encode_dataset_cached, encoding_cache_key
from splade_connectors.eval.tune_latency import LatencyRow, judge, pareto, parse_grid, recommend
from splade_connectors.registry import open_store
from splade_connectors.two_phase import TwoPhase
from tests.live_stores import LiveStore
from tests.splade_connectors.cli.conftest import DOCS, QRELS, QUERIES
from trainer.encoder import SpladeEncoder
from trainer.pruning import Pruning

# 2 document prunings x 2 datatypes x 2 query prunings x 2 two-phase settings = 16 configurations, 4 indexes
SETTINGS = "docs:top_k=4,datatype:uint8,queries:top_k=2,two-phase:count=1,expansion=2"


def _rows(report: dict[str, Any]) -> list[LatencyRow]:
    fields = ("store", "doc_pruning", "datatype", "query_pruning", "two_phase", "p50_ms", "p99_ms", "mean_ms",
              "index_bytes", "doc_terms", "query_terms")
    return [LatencyRow(**{f: r[f] for f in fields}, ndcg_at_10=r["ndcg@10"]) for r in report["rows"]]


def _tune(tiny_beir: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    code = main([
        "tune", "--latency", "--beir-dir", str(tiny_beir), "--settings", SETTINGS, "--warmup", "2",
        "--output-dir", str(out), "--no-progress", "--json", "--device", "cpu", *extra,
    ])
    assert code == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert report == json.loads((out / "tune.json").read_text(encoding="utf-8"))
    return report


def _check_report(report: dict[str, Any], store: str) -> LatencyRow:
    """Rows, budget, Pareto flags and recommendation as the rules say; returns the recommended row."""
    rows = report["rows"]
    assert len(rows) == 16 and {r["store"] for r in rows} == {store}
    assert {(r["doc_pruning"], r["datatype"], r["query_pruning"], r["two_phase"]) for r in rows} == {
        (d, t, q, p) for d in (None, "top_k=4") for t in ("float32", "uint8") for q in (None, "top_k=2")
        for p in (None, "count=1,expansion=2")
    }
    base = next(r for r in rows if (r["doc_pruning"], r["datatype"], r["query_pruning"], r["two_phase"]) == (None, "float32", None, None))
    assert base["ndcg@10_change"] == 0.0 and base["ndcg@10"] > 0
    for r in rows:
        assert r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] and r["index_bytes"] > 0
        assert r["ndcg@10_change"] == pytest.approx((r["ndcg@10"] - base["ndcg@10"]) / base["ndcg@10"])
        assert r["within_budget"] == (-r["ndcg@10_change"] <= report["max_loss"] + 1e-12)
        if r["doc_pruning"] == "top_k=4":
            assert r["doc_terms"] <= 4 < base["doc_terms"]
    measured = _rows(report)
    front = {id(r) for r in pareto(measured)}
    assert [r["pareto"] for r in rows] == [id(m) in front for m in measured]
    # the fastest within the quality budget (0.5% by default): p99 within 10% of the lowest, then the smallest index
    assert report["max_loss"] == 0.005 and report["max_p99_ms"] is None and report["p99_tolerance"] == 0.1
    within = [r for r in rows if r["within_budget"]]
    chosen = next(r for r in rows if r["label"] == report["recommended"][store])
    assert chosen["within_budget"] and -chosen["ndcg@10_change"] <= 0.005
    fastest = min(r["p99_ms"] for r in within)
    assert chosen["p99_ms"] <= fastest * 1.1
    assert chosen["index_bytes"] == min(r["index_bytes"] for r in within if r["p99_ms"] <= fastest * 1.1)
    return next(m for m in measured if (m.doc_pruning, m.datatype, m.query_pruning, m.two_phase)
                == (chosen["doc_pruning"], chosen["datatype"], chosen["query_pruning"], chosen["two_phase"]))


def _latency_budget_from_measurements(report: dict[str, Any]) -> None:
    """A p99 budget between the measured values (so it excludes some rows): best quality among the rest."""
    rows = _rows(report)
    p99s = sorted({r.p99_ms for r in rows})
    assert len(p99s) > 1
    budget = (p99s[len(p99s) // 2 - 1] + p99s[len(p99s) // 2]) / 2  # excludes the slower half
    recommended = judge(rows, max_loss=None, max_p99_ms=budget)
    chosen = rows[recommended[rows[0].store]]  # a budget above the fastest row always admits one
    assert chosen.p99_ms <= budget
    assert chosen.ndcg_at_10 == max(r.ndcg_at_10 for r in rows if r.p99_ms <= budget)
    assert any(r.p99_ms > budget for r in rows)
    # both budgets: quality loss and p99 hold at once
    strict = copy.deepcopy(rows)
    both = judge(strict, max_loss=0.005, max_p99_ms=budget)[rows[0].store]
    if both is not None:
        assert strict[both].p99_ms <= budget and -strict[both].ndcg_change <= 0.005
    else:
        assert not [r for r in strict if r.p99_ms <= budget and r.within_budget]


def _parse(command: str, flags: list[str], *tail: str) -> Any:
    return build_parser().parse_args([command, *flags, *tail])


def _check_flags(report: dict[str, Any], chosen: LatencyRow, store: str, tiny_beir: Path, where: list[str]) -> tuple[list[str], list[str]]:
    """The printed flags parse with the real parsers and name the configuration measured."""
    flags = report["flags"][store]
    ingest = _parse("ingest", flags["ingest"], "--input", str(tiny_beir), *where)
    documents, _ = encode_options(ingest)
    assert documents.prune == (Pruning.parse(chosen.doc_pruning) if chosen.doc_pruning else None)
    assert store_config_from_args(ingest).datatype == chosen.datatype  # type: ignore[attr-defined]  # a QdrantConfig
    search = _parse("search", flags["search"], "--query", "q", *where)
    _, queries = encode_options(search)
    assert queries.prune == (Pruning.parse(chosen.query_pruning) if chosen.query_pruning else None)
    two_phase = qdrant_options(search, default_path=None)["two_phase"]
    assert (TwoPhase.parse(two_phase) if two_phase is not None else None) == (TwoPhase.parse(chosen.two_phase) if chosen.two_phase else None)
    assert search.top_k == 10
    return flags["ingest"], flags["search"]


def _apply(cli_main: Callable[[list[str]], int], ingest_flags: list[str], tiny_beir: Path, where: list[str], chosen: LatencyRow) -> None:
    """`ingest` with the printed flags makes the collection measured: its datatype and document terms."""
    assert cli_main(["ingest", *ingest_flags, "--input", str(tiny_beir), "--collection", "tuned", "--no-progress", "--device", "cpu", *where]) == 0
    args = _parse("ingest", ingest_flags, "--input", str(tiny_beir), "--collection", "tuned", *where)
    config = store_config_from_args(args)
    for other in {"float32", "float16", "uint8"} - {chosen.datatype}:  # the collection has the measured datatype, no other
        with pytest.raises(ConfigMismatchError, match="sparse datatype"):
            open_store(config.model_copy(update={"datatype": other}), create=False)
    with open_store(config, create=False) as store:
        assert store.count() == 5
        vectors = store.fetch_vectors(["d1", "d2", "d3", "d4", "d5"])
        assert sum(v.nnz for v in vectors.values()) / len(vectors) == pytest.approx(chosen.doc_terms)  # pruned as measured
        store.drop()


def test_tune_latency_on_the_embedded_engine(tiny_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _tune(tiny_beir, tmp_path / "out", capsys, "--stores", "qdrant")
    assert report["stores"] == {"qdrant": "Qdrant embedded engine"}
    chosen = _check_report(report, "qdrant")
    _latency_budget_from_measurements(report)
    where = ["--qdrant-path", str(tmp_path / "applied")]
    ingest_flags, _ = _check_flags(report, chosen, "qdrant", tiny_beir, where)
    _apply(main, ingest_flags, tiny_beir, where, chosen)
    table = (tmp_path / "out" / "tune.md").read_text(encoding="utf-8")
    assert "Pareto set" in table and "splade-connectors ingest --store qdrant" in table and "splade-connectors search" in table
    assert (tmp_path / "out" / "tune.png").read_bytes().startswith(b"\x89PNG")
    assert set(report["seconds"]) >= {"encode", "index", "queries", "sweep"}


@pytest.mark.live
def test_tune_latency_on_a_qdrant_server(
    qdrant_server_store: LiveStore, tiny_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert qdrant_server_store.url
    if qdrant_server_store.api_key:
        monkeypatch.setenv("QDRANT_API_KEY", qdrant_server_store.api_key)
    where = ["--qdrant-url", qdrant_server_store.url]
    report = _tune(tiny_beir, tmp_path / "out", capsys, "--stores", "qdrant", *where)
    assert report["stores"] == {"qdrant": f"Qdrant server {qdrant_server_store.url}"}
    chosen = _check_report(report, "qdrant")
    _latency_budget_from_measurements(report)
    ingest_flags, search_flags = _check_flags(report, chosen, "qdrant", tiny_beir, [])
    assert ingest_flags[ingest_flags.index("--qdrant-url") + 1] == qdrant_server_store.url  # the flags name the server
    assert search_flags[search_flags.index("--qdrant-url") + 1] == qdrant_server_store.url
    _apply(main, ingest_flags, tiny_beir, [], chosen)


def test_recommendation_rules_on_injected_measurements() -> None:
    def row(ndcg: float, p99: float, size: int, docs: str | None = None) -> LatencyRow:
        return LatencyRow(store="qdrant", doc_pruning=docs, datatype="float32", query_pruning=None, two_phase=None,
                          ndcg_at_10=ndcg, p50_ms=p99 / 2, p99_ms=p99, mean_ms=p99 / 2, index_bytes=size, doc_terms=1, query_terms=1)

    rows = [row(0.700, 10.0, 100), row(0.698, 4.0, 80, "top_k=64"), row(0.690, 2.0, 60, "top_k=32"), row(0.697, 6.0, 120, "max_ratio=0.2")]
    recommended = judge(rows, max_loss=0.005, max_p99_ms=None)["qdrant"]
    assert rows[recommended].doc_pruning == "top_k=64"  # fastest within 0.5% (0.690 is 1.4% down)
    assert [r.pareto for r in rows] == [True, True, True, False]  # max_ratio=0.2: slower and larger than top_k=64, no better
    assert rows[judge(rows, max_loss=None, max_p99_ms=5.0)["qdrant"]].doc_pruning == "top_k=64"  # best within 5 ms
    assert rows[judge(rows, max_loss=None, max_p99_ms=3.0)["qdrant"]].doc_pruning == "top_k=32"
    assert judge(rows, max_loss=0.005, max_p99_ms=3.0)["qdrant"] is None  # nothing both fast and good enough
    assert recommend(rows, max_loss=None, max_p99_ms=1.0) is None
    # p99 within the tolerance of the fastest is as fast: the smaller index wins; without tolerance the fastest
    rows.append(row(0.699, 4.3, 70, "alpha_mass=0.9"))
    assert rows[judge(rows, max_loss=0.005, max_p99_ms=None)["qdrant"]].doc_pruning == "alpha_mass=0.9"
    assert rows[judge(rows, max_loss=0.005, max_p99_ms=None, tolerance=0.0)["qdrant"]].doc_pruning == "top_k=64"


def test_latency_grid_settings() -> None:
    grid = parse_grid("docs:top_k=128,queries:max_ratio=0.2,datatype:uint8,two-phase:ratio=0.4,expansion=5,two-phase:count=8")
    assert [str(p) if p else None for p in grid.doc_pruning] == [None, "top_k=128"]
    assert [str(p) if p else None for p in grid.query_pruning] == [None, "max_ratio=0.2"]
    assert grid.datatypes == ("float32", "uint8")
    assert [p.describe() if p else None for p in grid.two_phase] == [None, "ratio=0.4,expansion=5", "count=8,expansion=5"]
    both = parse_grid("top_k=64")  # no axis: a pruning rule for both sides
    assert both.doc_pruning == both.query_pruning == (None, Pruning(rule="top_k", value=64))


def test_latency_option_errors(tiny_beir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--latency", "--beir-dir", str(tiny_beir), "--stores", "none", "--no-progress"]) == 2
    assert "--latency measures through a store" in capsys.readouterr().err
    assert main(["tune", "--max-p99-ms", "0", "--beir-dir", str(tiny_beir), "--no-progress"]) == 2
    assert "--max-p99-ms must be > 0" in capsys.readouterr().err
    assert main(["tune", "--latency", "--beir-dir", str(tiny_beir), "--prune", "top_k=4", "--no-progress"]) == 2
    assert "--latency sweeps pruning itself" in capsys.readouterr().err
    assert main(["tune", "--max-ndcg-loss", "2", "--beir-dir", str(tiny_beir), "--no-progress"]) == 2
    assert "--max-loss must be in [0, 1)" in capsys.readouterr().err  # one option, two spellings


@pytest.mark.live
def test_tune_latency_on_opensearch(
    opensearch_store: LiveStore, tiny_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OpenSearch has no index datatype: the datatype axis collapses; pruning and two-phase are swept and printed."""
    if opensearch_store.username:
        monkeypatch.setenv("OPENSEARCH_USERNAME", opensearch_store.username)
        monkeypatch.setenv("OPENSEARCH_PASSWORD", opensearch_store.password or "")
    assert opensearch_store.url
    extra = [] if opensearch_store.verify_certs else ["--no-verify-certs"]
    report = _tune(tiny_beir, tmp_path / "out", capsys, "--stores", "opensearch", "--opensearch-url", opensearch_store.url, *extra)
    rows = report["rows"]
    assert len(rows) == 8 and {r["datatype"] for r in rows} == {None}
    chosen = next(r for r in rows if r["label"] == report["recommended"]["opensearch"])
    within = [r for r in rows if r["within_budget"]]
    assert -chosen["ndcg@10_change"] <= 0.005 and chosen["p99_ms"] <= min(r["p99_ms"] for r in within) * 1.1
    flags = report["flags"]["opensearch"]
    assert "--sparse-datatype" not in flags["ingest"]
    ingest = _parse("ingest", flags["ingest"], "--input", str(tiny_beir))
    assert ingest.store == "opensearch" and ingest.opensearch_url == opensearch_store.url
    assert encode_options(ingest)[0].prune == (Pruning.parse(chosen["doc_pruning"]) if chosen["doc_pruning"] else None)
    search = _parse("search", flags["search"], "--query", "q")
    assert encode_options(search)[1].prune == (Pruning.parse(chosen["query_pruning"]) if chosen["query_pruning"] else None)
    two_phase = opensearch_options(search)["two_phase"]
    assert (TwoPhase.parse(two_phase) if two_phase is not None else None) == (TwoPhase.parse(chosen["two_phase"]) if chosen["two_phase"] else None)


def test_vectors_cache_reuses_only_the_same_encoding(encoder: SpladeEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = RetrievalDataset(
        name="tiny", corpus={d: {"title": t, "text": x} for d, (t, x) in DOCS.items()}, queries=dict(QUERIES),
        qrels={q: {d: g} for q, d, g in QRELS}, with_title=True,
    )
    first = encode_dataset_cached(encoder, dataset, tmp_path)
    assert len(list(tmp_path.glob("encoded-*.npz"))) == 1

    def no_encoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("encoded again")

    monkeypatch.setattr("splade_connectors.eval.encoding.encode_dataset", no_encoding)
    again = encode_dataset_cached(encoder, dataset, tmp_path)  # read back, not encoded
    assert again.doc_ids == first.doc_ids and again.query_ids == first.query_ids
    for a, b in zip([*again.doc_vectors, *again.query_vectors], [*first.doc_vectors, *first.query_vectors]):
        assert a.indices.tolist() == b.indices.tolist() and a.values.tolist() == b.values.tolist()
    assert encoding_cache_key(encoder, dataset) != encoding_cache_key(encoder, dataset.with_options(with_title=False))
    with pytest.raises(AssertionError, match="encoded again"):  # other texts: another key, so it encodes
        encode_dataset_cached(encoder, dataset.with_options(with_title=False), tmp_path)

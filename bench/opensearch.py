"""Benchmark: OpenSearchStore vs sentence-transformers' `semantic_search_opensearch`, and at a million documents.

Two parts, one native OpenSearch (`splade_connectors.live`) per run:

`compare` (default) - the same SPLADE vectors (SciFact, encoded once by `SpladeEncoder` with the shipped
model and cached) fed to both sides, in the same run:
- bulk docs/s from nothing to searchable (index creation, writes, refresh): ours with documents that
  carry text, title and metadata, through `OpenSearchStore.upsert`, against the helper, whose index
  holds token weights and ids only. Warm-up rounds of both are discarded; then `--rounds` alternating
  rounds (helper, ours, ...); the median is the result, every round is in the JSON.
- query latency p50/p99, one request per query (as the helper queries): ours returning ids and scores
  (what the helper returns; `payload_fields=[]`) and ours with the whole payload; our batched
  throughput (`_msearch`); our two-phase query (default settings).
  The helper's own query (`neural_sparse`) needs the neural-search plugin and fails on a plain server;
  its latency is then timed on its own index with the same one-request-per-query loop using raw-token
  `rank_feature` clauses (dotted tokens unescaped, as the helper sends them).
  The helper's client is hard-coded to http://localhost:9200; the script points it at the benchmark
  server by substituting `opensearchpy.OpenSearch` during the call.

`scale` - `--docs` synthetic documents (default 1,000,000) resampled from real encoded documents
(SciFact + MS MARCO DL19 corpora, encoded once and cached under ~/.cache/splade-connectors/bench/):
document i takes each term of a random base document with probability 0.8 and each term of a second
one with probability 0.2, weights jittered by a log-normal factor (sigma 0.1), and carries the first
base document's title and text plus metadata. That keeps the real number of terms per document
(~285 with the shipped model) and the real spread of document frequencies over the vocabulary.
Queries are the real encoded SciFact and DL19 queries (~52 terms). Measured: bulk docs/s (generation
overlapped, as the ingestion pipeline overlaps encoding), index size on disk, exact-query p50/p99 and
batched q/s, and two-phase p50/p99 with recall@10 against the exact query for three settings.

Run:
    python bench/opensearch.py compare --docs 1000 --queries 300
    python bench/opensearch.py scale --docs 1000000 --heap 2g
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pickle
import queue
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from splade_connectors.opensearch import OpenSearchConfig, OpenSearchStore, TwoPhase
from splade_connectors.records import Document, EncodedDocument
from trainer.sparse import SparseVector

logger = logging.getLogger("bench.opensearch")

DATA = (
    Path(os.environ["SPLADE_CONNECTORS_SHARED_DATA"]) if os.environ.get("SPLADE_CONNECTORS_SHARED_DATA")
    else Path(__file__).resolve().parents[2] / "shared" / "data"
) / "beir"
SCALE_SETTINGS = ("ratio=0.4,expansion=5", "ratio=0.2,expansion=10", "count=8,expansion=20")


# ---- data and vectors --------------------------------------------------------------------------------
def cache_dir() -> Path:
    root = Path(os.environ.get("SPLADE_CONNECTORS_CACHE") or Path.home() / ".cache" / "splade-connectors")
    path = root / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def test_queries(folder: Path) -> list[str]:
    """Texts of the queries that have judgements in qrels/test.tsv (the BEIR test split)."""
    with open(folder / "qrels" / "test.tsv", encoding="utf-8") as handle:
        next(handle)
        judged = {line.split("\t")[0] for line in handle}
    return [q["text"] for q in read_jsonl(folder / "queries.jsonl") if q["_id"] in judged]


def encoded(name: str, docs: list[dict[str, Any]], queries: list[str]) -> tuple[list[SparseVector], list[SparseVector]]:
    """Document and query vectors of the shipped model, encoded once and cached (fp32, title + text)."""
    from trainer.models import shipped_model_dir

    model_dir = shipped_model_dir()
    model_key = hashlib.sha256((model_dir / "config.json").read_bytes()).hexdigest()[:8]
    model_key += f"-{(model_dir / 'model.safetensors').stat().st_size}"
    key = f"{name}-{len(docs)}d-{len(queries)}q-{model_key}.pkl"
    path = cache_dir() / key
    if path.exists():
        return pickle.loads(path.read_bytes())
    from trainer.encoder import SpladeEncoder

    encoder = SpladeEncoder.from_pretrained(model_dir, device="cpu")
    started = time.perf_counter()
    doc_vecs = encoder.encode_documents([f"{d['title']}\n{d['text']}" if d.get("title") else d["text"] for d in docs])
    logger.warning("encoded %d %s documents in %.0f s (cached in %s)", len(docs), name, time.perf_counter() - started, path)
    query_vecs = encoder.encode_queries(queries)
    path.write_bytes(pickle.dumps((doc_vecs, query_vecs)))
    return doc_vecs, query_vecs


def vocabulary() -> list[str]:
    from tokenizers import Tokenizer

    from trainer.models import shipped_model_dir

    vocab = Tokenizer.from_file(str(shipped_model_dir() / "tokenizer.json")).get_vocab(with_added_tokens=True)
    tokens = [""] * len(vocab)
    for token, idx in vocab.items():
        tokens[idx] = token
    return tokens


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 3)}


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process and its direct children (the server's JVM), from /proc."""
    if pid is None or not Path(f"/proc/{pid}/stat").exists():
        return float("nan")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [pid] + ([int(c) for c in children.read_text().split()] if children.exists() else [])
    total = 0.0
    for each in pids:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def own_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_single(run: Any, queries: list[Any], warmup: int = 20) -> list[float]:
    for q in queries[:warmup]:
        run(q)
    out = []
    for q in queries:
        started = time.perf_counter()
        run(q)
        out.append(time.perf_counter() - started)
    return out


# ---- compare: ours vs the sentence-transformers helper ------------------------------------------------
def ingest_ours(url: str, docs: list[EncodedDocument], vocab: list[str], batch: int, index: str) -> tuple[OpenSearchStore, float]:
    """Index creation + bulk load + refresh, timed together (what the helper's call also does)."""
    config = OpenSearchConfig(hosts=[url], index=index, replicas=0)
    OpenSearchStore(config, vocabulary=vocab).open().drop()
    started = time.perf_counter()
    store = OpenSearchStore(config, vocabulary=vocab).open()
    store.begin_ingest()
    for start in range(0, len(docs), batch):
        store.upsert(docs[start : start + batch])
    store.finish_ingest()
    return store, time.perf_counter() - started


def ingest_helper(
    url: str, corpus_dec: list[list[tuple[str, float]]], query_dec: list[list[tuple[str, float]]]
) -> tuple[Any, str, float, str]:
    """The helper's own index + bulk + refresh (+ its one query, which fails on a plain server), timed."""
    import opensearchpy
    from sentence_transformers.sparse_encoder.search_engines import semantic_search_opensearch

    original = opensearchpy.OpenSearch

    class _Redirected(original):  # type: ignore[misc,valid-type]  # subclassing the class held in a variable
        """The helper's hard-coded localhost:9200 client, pointed at the benchmark server."""

        def __init__(self, hosts: Any = None, **kwargs: Any) -> None:
            super().__init__(hosts=[url], **kwargs)

    client = original(hosts=[url])
    before = set(client.indices.get_alias(index="sparse_index_*").keys())
    outcome = "ok"
    started = time.perf_counter()
    opensearchpy.OpenSearch = _Redirected  # type: ignore[misc,assignment]  # patched for the helper's client, restored below
    try:
        semantic_search_opensearch(query_dec[:1], corpus_dec, top_k=10, output_index=True)
    except Exception as exc:  # noqa: BLE001 - expected on a server without neural-search
        outcome = f"failed: {type(exc).__name__}: {str(exc)[:160]}"
    finally:
        opensearchpy.OpenSearch = original  # type: ignore[misc]  # restores the class patched above
    seconds = time.perf_counter() - started
    (index,) = set(client.indices.get_alias(index="sparse_index_*").keys()) - before
    return client, index, seconds, outcome


def raw_query(decoded: list[tuple[str, float]]) -> dict[str, Any]:
    """The helper-side query: raw token names (dots unescaped), linear rank_feature clauses."""
    should = [{"rank_feature": {"field": f"tokens.{t}", "linear": {}, "boost": w}} for t, w in decoded]
    return {"size": 10, "query": {"bool": {"should": should}}}


def compare(args: argparse.Namespace) -> dict[str, Any]:
    from splade_connectors.live.opensearch_native import DEFAULT_VERSION, NativeOpenSearch

    folder = Path(args.data) / "scifact"
    corpus = read_jsonl(folder / "corpus.jsonl")  # encoded whole once (the scale part reuses the cache)
    queries = test_queries(folder)
    doc_vecs, query_vecs = encoded("scifact", corpus, queries)
    corpus, doc_vecs = corpus[: args.docs], doc_vecs[: args.docs]
    queries, query_vecs = queries[: args.queries], query_vecs[: args.queries]
    vocab = vocabulary()
    docs = [
        EncodedDocument(
            document=Document(id=d["_id"], text=d["text"], title=d.get("title") or None,
                              metadata={"source": "scifact", "position": i, "lang": "en"}),
            sparse=v,
        )
        for i, (d, v) in enumerate(zip(corpus, doc_vecs))
    ]
    decode = lambda v: [(vocab[i], float(w)) for i, w in zip(v.indices.tolist(), v.values.tolist())]
    corpus_dec, query_dec = [decode(v) for v in doc_vecs], [decode(v) for v in query_vecs]
    report: dict[str, Any] = {"docs": len(docs), "queries": len(queries), "rounds": args.rounds,
                              "mean_doc_terms": float(np.mean([v.nnz for v in doc_vecs])),
                              "mean_query_terms": float(np.mean([v.nnz for v in query_vecs]))}
    with NativeOpenSearch(args.version or DEFAULT_VERSION, heap=args.heap, startup_timeout=600) as server:
        url = server.url or ""
        report["opensearch_version"] = server.version
        ours_s, helper_s = [], []
        cpu: dict[str, list[tuple[float, float]]] = {"ours": [], "helper": []}  # (server, client) CPU seconds per round
        store = None
        client = index = None
        for round_ in range(args.warmup + args.rounds):
            if client is not None:
                client.indices.delete(index=index)
            server_cpu, client_cpu = process_cpu_seconds(server.pid), own_cpu_seconds()
            client, index, seconds, outcome = ingest_helper(url, corpus_dec, query_dec)
            helper_cpu = (process_cpu_seconds(server.pid) - server_cpu, own_cpu_seconds() - client_cpu)
            report["helper_neural_sparse_query"] = outcome
            if store is not None:
                store.drop()
            server_cpu, client_cpu = process_cpu_seconds(server.pid), own_cpu_seconds()
            store, ours = ingest_ours(url, docs, vocab, args.batch, "bench-splade")
            ours_cpu = (process_cpu_seconds(server.pid) - server_cpu, own_cpu_seconds() - client_cpu)
            if round_ >= args.warmup:
                helper_s.append(seconds)
                ours_s.append(ours)
                cpu["helper"].append(helper_cpu)
                cpu["ours"].append(ours_cpu)
        assert store is not None and client is not None
        report["ingest"] = {
            "ours_docs_per_s": round(len(docs) / statistics.median(ours_s), 1),
            "helper_docs_per_s": round(len(docs) / statistics.median(helper_s), 1),
            "ours_rounds_s": [round(s, 3) for s in ours_s], "helper_rounds_s": [round(s, 3) for s in helper_s],
            "bulk_writers": store.bulk_writers(), "batch": args.batch,
            "ours_count": store.count(), "helper_count": client.count(index=index)["count"],
            # the server's and this process' CPU seconds per load (medians): on a small machine the sum, over the
            # cores, bounds the wall time from below
            **{f"{side}_{part}_cpu_s": round(statistics.median(c[k] for c in cpu[side]), 3)
               for side in ("ours", "helper") for k, part in ((0, "server"), (1, "client"))},
        }
        report["ingest"]["speedup"] = round(report["ingest"]["ours_docs_per_s"] / report["ingest"]["helper_docs_per_s"], 3)
        report["query"] = query_round(store, client, index, query_vecs, query_dec)
        report["query"]["queries_with_dotted_tokens"] = sum(any("." in t for t, _ in q) for q in query_dec)
        store.drop()
        client.indices.delete(index=index)
    return report


def query_round(store: OpenSearchStore, client: Any, index: str, query_vecs: list[SparseVector],
                query_dec: list[list[tuple[str, float]]]) -> dict[str, Any]:
    """Single-query latency of every variant, interleaved variant by variant, and batched throughput."""
    variants: dict[str, Any] = {
        "helper_single": lambda i: client.search(index=index, body=raw_query(query_dec[i])),
        "ours_single_ids": lambda i: store.search_batch([query_vecs[i]], top_k=10, payload_fields=[]),
        "ours_single_payload": lambda i: store.search_batch([query_vecs[i]], top_k=10, payload_fields=None),
        "ours_single_two_phase": lambda i: store.search_batch([query_vecs[i]], top_k=10, payload_fields=[], two_phase=TwoPhase()),
    }
    positions = list(range(len(query_vecs)))
    out: dict[str, Any] = {name: percentiles(timed_single(run, positions)) for name, run in variants.items()}
    started = time.perf_counter()
    for i in positions:
        client.search(index=index, body=raw_query(query_dec[i]))
    out["helper_sequential_queries_per_s"] = round(len(positions) / (time.perf_counter() - started), 1)
    store.search_batch(query_vecs[:50], top_k=10, payload_fields=[])  # warm-up
    started = time.perf_counter()
    store.search_batch(query_vecs, top_k=10, payload_fields=[])
    out["ours_msearch_queries_per_s"] = round(len(query_vecs) / (time.perf_counter() - started), 1)
    return out


# ---- scale: a million resampled documents ----------------------------------------------------------------
class Resampler:
    """Synthetic documents from real encoded ones: mostly one base document's terms, some of another's."""

    def __init__(self, base: list[SparseVector], texts: list[dict[str, Any]], seed: int = 14) -> None:
        self.base, self.texts, self.seed = base, texts, seed

    def document(self, n: int, rng: np.random.Generator) -> EncodedDocument:
        a, b = rng.integers(len(self.base), size=2)
        first, second = self.base[a], self.base[b]
        keep_a = rng.random(first.nnz) < 0.8
        keep_b = rng.random(second.nnz) < 0.2
        idx = np.concatenate([first.indices[keep_a], second.indices[keep_b]])
        val = np.concatenate([first.values[keep_a], second.values[keep_b]])
        idx, where = np.unique(idx, return_index=True)  # a term in both keeps the first document's weight
        val = (val[where] * rng.lognormal(0.0, 0.1, idx.size)).astype(np.float32)
        source = self.texts[a]
        return EncodedDocument(
            document=Document(id=f"s{n}", text=source["text"], title=source.get("title") or None,
                              metadata={"base": source["_id"], "corpus": source["corpus"], "n": n}),
            sparse=SparseVector(idx, val),
        )

    def batches(self, total: int, size: int) -> Iterator[list[EncodedDocument]]:
        for start in range(0, total, size):
            rng = np.random.default_rng([self.seed, start])
            yield [self.document(n, rng) for n in range(start, min(total, start + size))]


def base_documents(data: Path) -> tuple[list[SparseVector], list[dict[str, Any]], list[SparseVector]]:
    vectors: list[SparseVector] = []
    texts: list[dict[str, Any]] = []
    queries: list[SparseVector] = []
    for name in ("scifact", "msmarco-dl19-subset"):
        corpus = read_jsonl(data / name / "corpus.jsonl")
        doc_vecs, query_vecs = encoded(name, corpus, test_queries(data / name))
        vectors += doc_vecs
        texts += [dict(d, corpus=name) for d in corpus]
        queries += query_vecs
    return vectors, texts, queries


def ingest_streamed(store: OpenSearchStore, batches: Iterator[list[EncodedDocument]], total: int) -> dict[str, float]:
    """Generation in one thread, upserts in this one (as the ingestion pipeline overlaps encoding and writes)."""
    ready: queue.Queue[list[EncodedDocument] | None] = queue.Queue(maxsize=3)

    def produce() -> None:
        for batch in batches:
            ready.put(batch)
        ready.put(None)

    producer = threading.Thread(target=produce, daemon=True)
    started = time.perf_counter()
    producer.start()
    store.begin_ingest()
    written, write_s, last_log = 0, 0.0, started
    while (batch := ready.get()) is not None:
        t = time.perf_counter()
        store.upsert(batch)
        write_s += time.perf_counter() - t
        written += len(batch)
        if time.perf_counter() - last_log > 60:
            last_log = time.perf_counter()
            logger.warning("%d / %d documents, %.0f docs/s", written, total, written / (last_log - started))
    t = time.perf_counter()
    store.finish_ingest()
    finish_s = time.perf_counter() - t
    wall = time.perf_counter() - started
    return {"docs": written, "seconds": round(wall, 1), "docs_per_s": round(written / wall, 1),
            "upsert_seconds": round(write_s, 1), "finish_ingest_seconds": round(finish_s, 1)}


def recall_at_10(exact: list[list[Any]], approx: list[list[Any]]) -> float:
    found = [len({h.id for h in e[:10]} & {h.id for h in a[:10]}) / len(e[:10]) for e, a in zip(exact, approx) if e]
    return round(float(np.mean(found)), 4)


def scale(args: argparse.Namespace) -> dict[str, Any]:
    from splade_connectors.live.opensearch_native import DEFAULT_VERSION, NativeOpenSearch

    base, texts, queries = base_documents(Path(args.data))
    queries = queries[: args.queries]
    vocab = vocabulary()
    report: dict[str, Any] = {"docs": args.docs, "base_documents": len(base), "queries": len(queries),
                              "mean_query_terms": round(float(np.mean([q.nnz for q in queries])), 1),
                              "shards": args.shards, "heap": args.heap, "batch": args.batch}
    sampler = Resampler(base, texts)
    report["mean_doc_terms_sample"] = round(float(np.mean([d.sparse.nnz for d in next(sampler.batches(2000, 2000))])), 1)
    with NativeOpenSearch(args.version or DEFAULT_VERSION, heap=args.heap, startup_timeout=600) as server:
        report["opensearch_version"] = server.version
        config = OpenSearchConfig(hosts=[server.url or ""], index="bench-scale", replicas=0, shards=args.shards,
                                  timeout=300, refresh_interval="30s")
        store = OpenSearchStore(config, vocabulary=vocab).open()
        try:
            report["ingest"] = ingest_streamed(store, sampler.batches(args.docs, args.batch), args.docs)
            report["count"] = store.count()
            report["index_bytes"] = store.storage_bytes()
            report["segments"] = segment_count(store)
            report["as_ingested"] = query_suite(store, queries, args.settings)
            if args.force_merge:
                started = time.perf_counter()
                store.force_merge(args.force_merge)
                report["force_merge"] = {"segments": segment_count(store), "seconds": round(time.perf_counter() - started, 1),
                                         "index_bytes": store.storage_bytes()}
                report["merged"] = query_suite(store, queries, args.settings)
        finally:
            if not args.keep:
                store.drop()
            store.close()
    return report


def segment_count(store: OpenSearchStore) -> int:
    stats = store.client.indices.stats(index=store.name, metric="segments")
    return int(stats["_all"]["primaries"]["segments"]["count"])


def query_suite(store: OpenSearchStore, queries: list[SparseVector], settings: list[str]) -> dict[str, Any]:
    """Exact and two-phase single-query latency, recall@10 of two-phase against exact, batched q/s."""
    positions = list(range(len(queries)))
    exact_hits = store.search_batch(queries, top_k=10, payload_fields=[], two_phase=None)
    out: dict[str, Any] = {"exact": percentiles(timed_single(
        lambda i: store.search_batch([queries[i]], top_k=10, payload_fields=[], two_phase=None), positions))}
    started = time.perf_counter()
    store.search_batch(queries, top_k=10, payload_fields=[], two_phase=None)
    out["exact"]["msearch_queries_per_s"] = round(len(queries) / (time.perf_counter() - started), 1)
    for spec in settings:
        phased = TwoPhase.parse(spec)
        approx = store.search_batch(queries, top_k=10, payload_fields=[], two_phase=phased)
        out[spec] = percentiles(timed_single(
            lambda i: store.search_batch([queries[i]], top_k=10, payload_fields=[], two_phase=phased), positions))  # noqa: B023 - called in this iteration
        out[spec]["recall_at_10_vs_exact"] = recall_at_10(exact_hits, approx)
        out[spec]["mean_phase_one_terms"] = round(float(np.mean([phased.split(q)[0].nnz for q in queries])), 1)
        started = time.perf_counter()
        store.search_batch(queries, top_k=10, payload_fields=[], two_phase=phased)
        out[spec]["msearch_queries_per_s"] = round(len(queries) / (time.perf_counter() - started), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", nargs="?", choices=("compare", "scale"), default="compare")
    parser.add_argument("--data", default=str(DATA), help="folder holding beir/scifact and beir/msmarco-dl19-subset")
    parser.add_argument("--docs", type=int, default=None, help="documents (compare: 1000; scale: 1000000)")
    parser.add_argument("--queries", type=int, default=None, help="queries (compare: 300; scale: all 343)")
    parser.add_argument("--batch", type=int, default=None, help="documents per upsert (compare: 1000, as the helper; scale: 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="compare: measured rounds per side (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="compare: discarded rounds per side (fresh JVM)")
    parser.add_argument("--heap", default=None, help="OpenSearch heap (default: heap_for_documents(--docs): 512m..2g)")
    parser.add_argument("--shards", type=int, default=1, help="scale: primary shards")
    parser.add_argument("--settings", nargs="+", default=list(SCALE_SETTINGS), help="scale: two-phase settings")
    parser.add_argument("--force-merge", type=int, default=0, help="scale: also measure after merging to N segments")
    parser.add_argument("--keep", action="store_true", help="scale: do not drop the index (the server still stops)")
    parser.add_argument("--version", default=None, help="native OpenSearch version")
    parser.add_argument("--out", default=None, help="also write the JSON report here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    from splade_connectors.live.opensearch_native import heap_for_documents

    if args.part == "compare":
        args.docs, args.queries = args.docs or 1000, args.queries or 300
        args.batch, args.heap = args.batch or 1000, args.heap or heap_for_documents(args.docs)
        report = compare(args)
    else:
        args.docs, args.queries = args.docs or 1_000_000, args.queries or 10_000
        args.batch, args.heap = args.batch or 5000, args.heap or heap_for_documents(args.docs)
        report = scale(args)
    report["command"] = "python bench/opensearch.py " + " ".join(sys.argv[1:])
    report["load_average_at_end"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

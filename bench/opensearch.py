"""Benchmark: OpenSearchStore vs sentence-transformers' `semantic_search_opensearch` on the same vectors.

Both sides get the same SPLADE vectors (encoded once by `SpladeEncoder` with the shipped model), so
the numbers compare storage/query paths, not encoders. Measured:
- bulk ingestion docs/s (write + final refresh), after one discarded warm-up round of ours (fresh JVM);
- per-query latency p50/p99 (one request per query, as the sentence-transformers helper does), and
  our batched `_msearch` throughput.
The sentence-transformers helper connects to http://localhost:9200 (hard-coded); the script points
that client at the benchmark server by substituting `opensearchpy.OpenSearch` during the call. Its query path uses `neural_sparse`, which needs the neural-search
plugin; on a plain server that query fails, and the script then times the helper's index with the
same one-request-per-query loop using raw-token `rank_feature` clauses (dotted tokens unescaped).

Run: python bench/opensearch.py --docs 1000 --queries 300
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np

from splade_connectors.opensearch import OpenSearchConfig, OpenSearchStore
from splade_connectors.records import Document, EncodedDocument
from trainer.encoder import SpladeEncoder
from trainer.models import shipped_model_dir
from trainer.sparse import SparseVector

logger = logging.getLogger("bench.opensearch")


def _load(folder: Path, docs: int, queries: int) -> tuple[list[dict[str, Any]], list[str]]:
    corpus = []
    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            corpus.append(json.loads(line))
            if len(corpus) >= docs:
                break
    texts = []
    with open(folder / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            texts.append(json.loads(line)["text"])
            if len(texts) >= queries:
                break
    return corpus, texts


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def bench_ours(url: str, corpus: list[dict[str, Any]], doc_vecs: list[SparseVector], query_vecs: list[SparseVector],
               vocab: list[str], batch: int) -> dict[str, Any]:
    store = OpenSearchStore(OpenSearchConfig(hosts=[url], index="bench-splade", replicas=0), vocabulary=vocab).open()
    store.drop()
    store = OpenSearchStore(store.config, vocabulary=vocab).open()
    encoded = [
        EncodedDocument(document=Document(id=d["_id"], text=d["text"], title=d.get("title") or None), sparse=v)
        for d, v in zip(corpus, doc_vecs)
    ]
    started = time.perf_counter()
    store.begin_ingest()
    for start in range(0, len(encoded), batch):
        store.upsert(encoded[start : start + batch])
    store.finish_ingest()
    ingest_s = time.perf_counter() - started
    for q in query_vecs[:20]:  # warm-up
        store.search_batch([q])
    single = []
    for q in query_vecs:
        t = time.perf_counter()
        store.search_batch([q], top_k=10)
        single.append(time.perf_counter() - t)
    t = time.perf_counter()
    store.search_batch(query_vecs, top_k=10)
    batched_s = time.perf_counter() - t
    result = {"ingest_docs_per_s": len(encoded) / ingest_s, "ingest_s": ingest_s, **_percentiles(single),
              "msearch_queries_per_s": len(query_vecs) / batched_s, "count": store.count()}
    store.drop()
    return result


def bench_sentence_transformers(url: str, corpus_dec: list[list[tuple[str, float]]], query_dec: list[list[tuple[str, float]]],
                                query_vecs: list[SparseVector]) -> dict[str, Any]:
    import opensearchpy
    from sentence_transformers.sparse_encoder.search_engines import semantic_search_opensearch

    original = opensearchpy.OpenSearch

    class _Redirected(original):  # type: ignore[misc,valid-type]
        """The helper's hard-coded localhost:9200 client, pointed at the benchmark server."""

        def __init__(self, hosts: Any = None, **kwargs: Any) -> None:
            super().__init__(hosts=[url], **kwargs)

    client = original(hosts=[url])
    before = set(client.indices.get_alias(index="sparse_index_*").keys()) if client.indices.exists(index="sparse_index_*") else set()
    started = time.perf_counter()
    result: dict[str, Any] = {}
    opensearchpy.OpenSearch = _Redirected
    try:
        semantic_search_opensearch(query_dec, corpus_dec, top_k=10, output_index=True)
        result["neural_sparse_query"] = "ok"
    except Exception as exc:  # noqa: BLE001 - expected on a server without neural-search
        result["neural_sparse_query"] = f"failed: {type(exc).__name__}: {str(exc)[:160]}"
    finally:
        opensearchpy.OpenSearch = original
    result["ingest_s_incl_first_query"] = time.perf_counter() - started
    result["ingest_docs_per_s"] = len(corpus_dec) / result["ingest_s_incl_first_query"]
    (index,) = set(client.indices.get_alias(index="sparse_index_*").keys()) - before
    result["count"] = client.count(index=index)["count"]
    single, empty = [], 0
    for q in query_dec[:20]:
        client.search(index=index, body=_raw_query(q))
    for q in query_dec:
        t = time.perf_counter()
        hits = client.search(index=index, body=_raw_query(q))["hits"]["hits"]
        single.append(time.perf_counter() - t)
        empty += not hits
    result.update(_percentiles(single))
    result["loop"] = "one search per query, raw-token rank_feature clauses on the helper's index"
    result["queries_with_dotted_tokens"] = sum(any("." in t for t, _ in q) for q in query_dec)
    client.indices.delete(index=index)
    return result


def _raw_query(decoded: list[tuple[str, float]]) -> dict[str, Any]:
    should = [{"rank_feature": {"field": f"tokens.{t}", "linear": {}, "boost": w}} for t, w in decoded]
    return {"size": 10, "query": {"bool": {"should": should}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/beir/scifact"))
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--batch", type=int, default=500, help="documents per _bulk request (ours)")
    parser.add_argument("--version", default=None, help="native OpenSearch version")
    parser.add_argument("--vector-cache", default=None, help="pickle file to keep the encoded vectors between runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from splade_connectors.live.opensearch_native import DEFAULT_VERSION, NativeOpenSearch

    corpus, texts = _load(Path(args.data), args.docs, args.queries)
    encoder = SpladeEncoder.from_pretrained(shipped_model_dir(), device="cpu")
    vocab = encoder.model.id_to_token()
    cache = Path(args.vector_cache) if args.vector_cache else None
    if cache is not None and cache.exists():
        doc_vecs, query_vecs, encode_s = pickle.loads(cache.read_bytes())
    else:
        t = time.perf_counter()
        doc_vecs = encoder.encode_documents([f"{d.get('title', '')}\n{d['text']}" if d.get("title") else d["text"] for d in corpus])
        encode_s = time.perf_counter() - t
        query_vecs = encoder.encode_queries(texts)
        if cache is not None:
            cache.write_bytes(pickle.dumps((doc_vecs, query_vecs, encode_s)))
    decode = lambda v: [(vocab[i], float(w)) for i, w in zip(v.indices.tolist(), v.values.tolist())]  # noqa: E731
    server = NativeOpenSearch(args.version or DEFAULT_VERSION, startup_timeout=600)
    server.start()
    try:
        bench_ours(server.url or "", corpus, doc_vecs, query_vecs, vocab, args.batch)  # JVM warm-up, discarded
        theirs = bench_sentence_transformers(server.url or "", [decode(v) for v in doc_vecs], [decode(v) for v in query_vecs], query_vecs)
        ours = bench_ours(server.url or "", corpus, doc_vecs, query_vecs, vocab, args.batch)
    finally:
        server.stop()
    report = {
        "docs": len(corpus), "queries": len(texts), "encode_docs_per_s": len(corpus) / encode_s,
        "opensearch_version": server.version, "ours": ours, "sentence_transformers": theirs,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

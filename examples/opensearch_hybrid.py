"""Ingest a few documents into OpenSearch and run exact SPLADE and hybrid (BM25 + SPLADE, RRF) search.

    OPENSEARCH_URL=http://127.0.0.1:9200 python examples/opensearch_hybrid.py
(credentials: OPENSEARCH_USERNAME / OPENSEARCH_PASSWORD; the password is never printed.)
"""

from __future__ import annotations

import os

from splade_connectors import (
    HybridOptions,
    IngestConfig,
    SpladeEncoder,
    ingest,
    open_store,
    search,
    shipped_model_dir,
    store_config,
)

DOCS = [
    {"_id": "1", "title": "Cornelius", "text": "Cornelius was a centurion in Caesarea, told of in the book of Acts."},
    {"_id": "2", "title": "Tariffs", "text": "U.S. trade policy, e.g. tariffs on steel, changed in 2018."},
    {"_id": "3", "title": "Proteins", "text": "Alpha helices and beta sheets are protein secondary structures."},
]


def main() -> None:
    config = store_config(
        "opensearch",
        hosts=[os.environ.get("OPENSEARCH_URL", "http://localhost:9200")],
        username=os.environ.get("OPENSEARCH_USERNAME") or None,
        password=os.environ.get("OPENSEARCH_PASSWORD") or None,
        index="splade-example",
        replicas=0,
    )
    encoder = SpladeEncoder.from_pretrained(shipped_model_dir(), device="cpu")
    with open_store(config, vocabulary=encoder.model.id_to_token()) as store:
        report = ingest(DOCS, encoder, store, IngestConfig(batch_size=2))
        print(f"{store.describe()}: {report.accepted} documents, {store.count()} in the index")
        queries = ["who is cornelius in the book of acts", "u.s. tariffs"]
        for query, hits in zip(queries, search(store, encoder, queries, top_k=2, explain=True)):
            print(f"\nSPLADE  {query!r}")
            for hit in hits:
                terms = ", ".join(f"{t.token}({t.contribution:.2f})" for t in (hit.terms or [])[:5])
                print(f"  {hit.id}  {hit.score:.3f}  {terms}")
        fused = search(store, encoder, queries, top_k=2, hybrid=HybridOptions(fusion="rrf", rrf_k=60))
        for query, hits in zip(queries, fused):
            print(f"\nHybrid RRF(k=60)  {query!r}: " + ", ".join(f"{h.id} ({h.score:.4f})" for h in hits))
        store.drop()


if __name__ == "__main__":
    main()

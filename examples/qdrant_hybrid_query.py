"""Hybrid search in the embedded Qdrant engine: SPLADE sparse + MiniLM dense, fused inside the engine with RRF.

    python examples/qdrant_hybrid_query.py "why do onions make my eyes water"

Ingests the bundled sample corpus with both vectors into an in-memory collection, then prints the
sparse, dense and fused rankings side by side. `rrf_k` uses the RRF paper's convention (default
60; see splade_connectors.qdrant.hybrid for how it maps to Qdrant's own k, whose default is 2).
"""

from __future__ import annotations

import argparse

from splade_connectors import HybridOptions, SpladeEncoder, ingest_file, open_store, search, shipped_model_dir, store_config
from splade_connectors.qdrant import QdrantStore
from splade_connectors.qdrant.dense import MeanPooledEncoder
from splade_connectors.samples import SAMPLE_CORPUS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("query", nargs="?", default="why do onions make my eyes water")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--rrf-k", type=int, default=60)
    parser.add_argument("--fusion", choices=("rrf", "dbsf"), default="rrf")
    args = parser.parse_args()

    sparse_encoder = SpladeEncoder.from_pretrained(shipped_model_dir(), device="cpu")
    dense_encoder = MeanPooledEncoder()
    config = store_config("qdrant", collection="hybrid-demo", dense_name="dense", dense_size=dense_encoder.dim)
    with open_store(config) as store:
        assert isinstance(store, QdrantStore)  # the dense-only ranking below is Qdrant's own method
        ingest_file(SAMPLE_CORPUS, sparse_encoder, store, dense_encoder=dense_encoder)
        dense = dense_encoder([args.query])[0]
        rankings = {
            "sparse (SPLADE)": search(store, sparse_encoder, [args.query], top_k=args.top_k)[0],
            "dense (MiniLM)": store.dense_search_batch([dense], top_k=args.top_k)[0],
            f"fused ({args.fusion}{', k=' + str(args.rrf_k) if args.fusion == 'rrf' else ''})": search(
                store, sparse_encoder, [args.query], top_k=args.top_k, dense_encoder=dense_encoder,
                hybrid=HybridOptions(fusion=args.fusion, rrf_k=args.rrf_k),
            )[0],
        }
    print(f'query: "{args.query}"')
    for name, hits in rankings.items():
        shown = [h if isinstance(h, str) else f"{h.id} ({h.score:.3f})" for h in hits]
        print(f"  {name:<22} " + ", ".join(str(s) for s in shown))


if __name__ == "__main__":
    main()

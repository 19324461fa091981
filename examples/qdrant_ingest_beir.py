"""Ingest a BEIR folder (corpus.jsonl) into Qdrant with the SPLADE model, resumably.

    python examples/qdrant_ingest_beir.py ../shared/data/beir/scifact --path ./qdrant_data
    QDRANT_API_KEY=... python examples/qdrant_ingest_beir.py DIR --url https://my-cluster:6333

`--path` runs the real Qdrant engine embedded in this process (one collection per shard folder);
`--url` a server. Interrupt and rerun: the checkpoint file makes it continue where it stopped.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from splade_connectors import EncodeOptions, IngestConfig, SpladeEncoder, ingest_file, open_store, shipped_model_dir, store_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("beir_dir", type=Path)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="Qdrant server (API key from $QDRANT_API_KEY)")
    where.add_argument("--path", default="./qdrant_data", help="embedded Qdrant folder")
    parser.add_argument("--collection", default=None, help="default: the folder name")
    parser.add_argument("--model", default=None, help="SPLADE checkpoint (default: the shipped trained model)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--idf", action="store_true", help="Qdrant IDF modifier (changes scores)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    config = store_config(
        "qdrant",
        url=args.url, path=None if args.url else args.path, api_key=os.environ.get("QDRANT_API_KEY") if args.url else None,
        collection=args.collection or args.beir_dir.name, idf=args.idf,
    )
    encoder = SpladeEncoder.from_pretrained(args.model or shipped_model_dir(), options=EncodeOptions(batch_size=32))
    checkpoint = Path(f".ingest-{config.collection_name}.ckpt")
    started = time.perf_counter()
    with open_store(config) as store:
        report = ingest_file(args.beir_dir, encoder, store, IngestConfig(batch_size=args.batch_size, checkpoint=checkpoint))
        print(f"{report.accepted} documents ({report.skipped_by_resume} skipped by resume, {len(report.invalid)} invalid) "
              f"in {time.perf_counter() - started:.1f}s -> {config.describe()} holds {store.count()}")


if __name__ == "__main__":
    main()

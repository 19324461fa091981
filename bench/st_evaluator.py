"""sentence-transformers' `SparseInformationRetrievalEvaluator` on a BEIR folder: the reference numbers that
`splade-connectors eval` is compared with (same texts: title + "\\n" + text, binary relevance grade >= 1).

    python bench/st_evaluator.py --model /tmp/scifact-inference-free --beir-dir ../shared/data/beir/scifact
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="SparseEncoder directory (plain, or inference-free Router)")
    parser.add_argument("--beir-dir", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    from splade_connectors.eval.datasets import load_beir_folder

    dataset = load_beir_folder(args.beir_dir, split=args.split)
    evaluator = SparseInformationRetrievalEvaluator(
        queries={q: dataset.queries[q] for q in dataset.eval_query_ids()},
        corpus={d: dataset.document_text(d) for d in dataset.corpus},
        relevant_docs=dataset.relevant_docs(), name=dataset.name, batch_size=args.batch_size, write_csv=False,
    )
    started = time.perf_counter()
    scores = evaluator(SparseEncoder(args.model, device="cpu"))
    prefix = f"{dataset.name}_"
    result = {k.removeprefix(prefix).removeprefix("dot_"): round(float(v), 6) for k, v in scores.items()}
    print(json.dumps({"dataset": dataset.name, "seconds": round(time.perf_counter() - started, 1), "metrics": result}, indent=2))


if __name__ == "__main__":
    main()

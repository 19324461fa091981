"""Building the inference-free test model: the shipped MLM for documents, SciFact IDF for queries.

Shared by the core parity tests and the evaluation parity test; the model is assembled with
sentence-transformers' own modules and saved by sentence-transformers, so loading it tests our reader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from trainer.static import idf_weights


def scifact_idf(scifact_dir: Path, tokenizer: Any) -> torch.Tensor:
    """IDF of every vocabulary token over the SciFact corpus (title + text), as the query side's weights."""
    texts = []
    with open(scifact_dir / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            texts.append(f"{row.get('title', '')}\n{row['text']}".strip())
    return idf_weights(texts, tokenizer)


def build_st_router(mlm_dir: Path, weights: torch.Tensor, directory: Path) -> Path:
    """A sentence-transformers Router SparseEncoder (query: SparseStaticEmbedding, documents: MLM + max
    SpladePooling), saved by sentence-transformers into `directory`."""
    from sentence_transformers.base.modules import Router
    from sentence_transformers.sparse_encoder import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SparseStaticEmbedding, SpladePooling

    document = MLMTransformer(str(mlm_dir))
    query = SparseStaticEmbedding(tokenizer=document.tokenizer, weight=weights.clone(), frozen=True)
    router = Router.for_query_document(query_modules=[query], document_modules=[document, SpladePooling("max")])
    SparseEncoder(modules=[router], similarity_fn_name="dot", device="cpu").save(str(directory))
    return directory

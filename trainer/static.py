"""The query side of inference-free SPLADE: a weight per vocabulary token, no model forward.

An inference-free model encodes documents with the MLM (as any SPLADE) and queries by tokenisation
and a weight lookup: the query vector has, for every distinct token of the query, that token's weight.
This is sentence-transformers' `SparseStaticEmbedding` (the query route of a `Router` SparseEncoder) and
OpenSearch's doc-only mode (an `idf.json` of token -> weight beside the document model):

- tokens are taken without special tokens, truncated at `max_seq_length` (the tokenizer's limit);
- a token counts once however often it occurs (presence x weight);
- weights <= 0 give no entry (a `SparseVector` holds positive weights only; stores reject others).

The weights are an `nn.Parameter`, so training can update them (unless `frozen`), as sentence-transformers
trains a Router model's query route.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainer.errors import SpladeError
from trainer.sparse import SparseVector

logger = logging.getLogger(__name__)

IDF_FILE = "idf.json"
WEIGHTS_FILE = "model.safetensors"
LEGACY_WEIGHTS_FILE = "pytorch_model.bin"
CONFIG_FILE = "config.json"


class StaticWeightsError(SpladeError, ValueError):
    """Query token weights are missing, unreadable or do not fit the tokenizer's vocabulary."""


class SparseStaticEmbedding(nn.Module):
    """Token weights (vocab,) and the tokenizer that maps query text to token ids."""

    def __init__(self, tokenizer: Any, weight: torch.Tensor | None = None, *, frozen: bool = False,
                 max_seq_length: int | None = None) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        size = len(tokenizer.get_vocab())
        if weight is None:
            weight = torch.ones(size, dtype=torch.float32)
        weight = torch.as_tensor(weight, dtype=torch.float32).reshape(-1)
        if weight.shape[0] != size:
            raise StaticWeightsError(f"query token weights have {weight.shape[0]} entries, the tokenizer has {size} tokens")
        self.weight = nn.Parameter(weight.clone(), requires_grad=not frozen)
        self.frozen = frozen
        limit = max_seq_length or getattr(tokenizer, "model_max_length", None)
        self.max_seq_length = int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else 512

    @property
    def vocab_size(self) -> int:
        return int(self.weight.shape[0])

    # ---- encoding ---------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
        """Differentiable (batch, vocab) query vectors: token presence (from real tokens) x weight."""
        presence = torch.zeros(input_ids.shape[0], self.vocab_size, dtype=self.weight.dtype, device=input_ids.device)
        presence.scatter_(1, input_ids, attention_mask.to(self.weight.dtype))
        return presence * self.weight

    def vectors_from_ids(self, ids: Sequence[Sequence[int]], dim: int | None = None) -> list[SparseVector]:
        """Query vectors for already tokenised queries (ids without special tokens): a lookup, no forward."""
        weights = self.weight.detach().float().cpu().numpy()
        out = []
        for seq in ids:
            tokens = np.unique(np.asarray(seq, dtype=np.int64))
            values = weights[tokens]
            keep = values > 0
            out.append(SparseVector(tokens[keep], values[keep], dim or self.vocab_size))
        return out

    # ---- OpenSearch idf.json ----------------------------------------------------------------------
    @classmethod
    def from_idf_json(cls, path: str | Path, tokenizer: Any, *, frozen: bool = True) -> SparseStaticEmbedding:
        """Weights from an `idf.json` (token -> weight); tokens it does not list get weight 0."""
        path = Path(path)
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise StaticWeightsError(f"cannot read query token weights {path}: {exc}") from exc
        if not isinstance(table, dict):
            raise StaticWeightsError(f"{path} must be a JSON object of token -> weight")
        vocab = tokenizer.get_vocab()
        weight = torch.zeros(len(vocab), dtype=torch.float32)
        unknown = 0
        for token, value in table.items():
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise StaticWeightsError(f"{path}: weight of token {token!r} is not a finite number")
            if token in vocab:
                weight[vocab[token]] = float(value)
            else:
                unknown += 1
        if unknown:
            logger.warning("%s: %d of %d tokens are not in the tokenizer's vocabulary and were ignored", path, unknown, len(table))
        return cls(tokenizer, weight, frozen=frozen)

    def to_idf_json(self, path: str | Path) -> Path:
        """Write the non-zero weights as OpenSearch's `idf.json` (token -> weight)."""
        path = Path(path)
        id_to_token = {i: t for t, i in self.tokenizer.get_vocab().items()}
        weights = self.weight.detach().float().cpu().numpy()
        table = {id_to_token[int(i)]: float(weights[i]) for i in np.flatnonzero(weights) if int(i) in id_to_token}
        path.write_text(json.dumps(table, ensure_ascii=False), encoding="utf-8")
        return path

    # ---- sentence-transformers module folder --------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """The sentence-transformers `SparseStaticEmbedding` folder: config, weights, tokenizer."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(json.dumps({"frozen": self.frozen}, indent=4), encoding="utf-8")
        save_file({"weight": self.weight.detach().float().cpu().contiguous()}, str(directory / WEIGHTS_FILE))
        self.tokenizer.save_pretrained(str(directory))
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, root: str | Path | None = None, tokenizer: Any | None = None) -> SparseStaticEmbedding:
        """Read a `SparseStaticEmbedding` folder (weights file, or a `path` to an idf.json in its config)."""
        from transformers import AutoTokenizer

        directory = Path(directory)
        config_file = directory / CONFIG_FILE
        try:
            config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
        except (OSError, json.JSONDecodeError) as exc:
            raise StaticWeightsError(f"cannot read {config_file}: {exc}") from exc
        frozen = bool(config.get("frozen", False))
        if tokenizer is None:
            source = directory if (directory / "tokenizer_config.json").exists() or (directory / "tokenizer.json").exists() else root
            if source is None:
                raise StaticWeightsError(f"{directory} has no tokenizer")
            tokenizer = AutoTokenizer.from_pretrained(str(source))
            if not getattr(tokenizer, "is_fast", False):
                raise StaticWeightsError(f"{source}: a fast (Rust) tokenizer is required (tokenizer.json)")
        json_path = config.get("path")
        if isinstance(json_path, str) and json_path.endswith(".json"):
            candidates = [directory / json_path] + ([Path(root) / json_path] if root is not None else [])
            found = next((p for p in candidates if p.exists()), None)
            if found is None:
                raise StaticWeightsError(f"{directory}: query token weights {json_path!r} not found")
            return cls.from_idf_json(found, tokenizer, frozen=frozen)
        weight = _read_weight(directory)
        return cls(tokenizer, weight, frozen=frozen)


def _read_weight(directory: Path) -> torch.Tensor:
    if (directory / WEIGHTS_FILE).exists():
        from safetensors.torch import load_file

        tensors = load_file(str(directory / WEIGHTS_FILE))
    elif (directory / LEGACY_WEIGHTS_FILE).exists():
        tensors = torch.load(str(directory / LEGACY_WEIGHTS_FILE), map_location="cpu", weights_only=True)
    else:
        raise StaticWeightsError(f"{directory} has no {WEIGHTS_FILE} (query token weights)")
    if "weight" not in tensors:
        raise StaticWeightsError(f"{directory}: the weights file has no 'weight' tensor (found {sorted(tensors)})")
    return tensors["weight"].float()


def idf_weights(texts: Iterable[str], tokenizer: Any, *, batch_size: int = 1024) -> torch.Tensor:
    """IDF of each vocabulary token over a corpus: log(1 + (N - df + 0.5) / (df + 0.5)); 0 for unseen tokens.

    The BM25 form of IDF, always > 0 for tokens that occur; tokens are counted as the query side
    sees them (no special tokens). Use it to build the query side of an inference-free model from a corpus.
    """
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    size = len(tokenizer.get_vocab())
    df = np.zeros(size, dtype=np.int64)
    total = 0
    batch: list[str] = []

    def flush() -> None:
        for encoding in backend.encode_batch(batch, add_special_tokens=False):
            df[np.unique(np.asarray(encoding.ids, dtype=np.int64))] += 1

    for text in texts:
        batch.append(text)
        total += 1
        if len(batch) >= batch_size:
            flush()
            batch = []
    if batch:
        flush()
    idf = np.log1p((total - df + 0.5) / (df + 0.5))
    idf[df == 0] = 0.0
    return torch.from_numpy(idf.astype(np.float32))

"""The SPLADE model: a masked-language model whose vocabulary logits are pooled into a sparse vector.

`SpladeModel` loads plain Hugging Face `*ForMaskedLM` checkpoints and sentence-transformers
SparseEncoder directories, saves the sentence-transformers layout, and offers two forward paths:
`forward` (differentiable, for training) and `pooled_logits` (inference: the max over tokens is
taken on raw logits before log1p(relu), in chunks, so the (batch, length, vocab) tensor never exists).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.checkpoint import (
    ROUTER_QUERY_DIR,
    ROUTER_TRANSFORMER_DIR,
    CheckpointError,
    PoolingConfig,
    SparseEncoderLayout,
    read_layout,
    resolve_checkpoint,
    write_layout,
    write_router_layout,
)
from trainer.cpu import CpuFeatures
from trainer.pooling import DenseProjection, VocabProjection, forward_chunks, max_over_tokens, pool_max, pool_sum
from trainer.precision import PrecisionPlan, build_projection, resolve_precision
from trainer.static import SparseStaticEmbedding

logger = logging.getLogger(__name__)

DEFAULT_MAX_SEQ_LENGTH = 512


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, or CUDA when present, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """The dtype of the model's weights for `dtype` on `device` (see `trainer.precision.resolve_precision`).

    fp32 on CPU by default; bf16 on CUDA where supported (else fp16); `"auto"` is fp32 on CPU here (the encoder
    measures its routes, `trainer.probe`). `"int8"` and `"int8-full"` keep an fp32 model (their int8 layers are
    built by the encoder). Any other
    `torch.dtype` (e.g. float64 in tests) is used as given.
    """
    if isinstance(dtype, torch.dtype) and dtype not in (torch.float32, torch.bfloat16, torch.float16):
        return dtype
    return resolve_precision(device, dtype).dtype


def activate(x: torch.Tensor, activation_function: str) -> torch.Tensor:
    """log1p(relu(x)), applied twice for the `log1p_relu` variant."""
    out = torch.log1p(torch.relu(x))
    if activation_function == "log1p_relu":
        out = torch.log1p(out)
    return out


class SpladeModel(nn.Module):
    """A masked-language model plus SPLADE pooling; the unit the encoder and the trainer share.

    With `query_static` (token weights, `trainer.static`) the model is inference-free: queries are encoded
    by tokenisation and weight lookup, documents by the MLM; it saves as a sentence-transformers Router.
    """

    def __init__(
        self,
        mlm: nn.Module,
        tokenizer: Any,
        *,
        pooling: PoolingConfig | None = None,
        max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
        do_lower_case: bool = False,
        prompts: dict[str, str] | None = None,
        query_static: SparseStaticEmbedding | None = None,
    ) -> None:
        super().__init__()
        self.mlm = mlm
        self.tokenizer = tokenizer
        self.pooling = pooling or PoolingConfig()
        self.max_seq_length = int(max_seq_length)
        self.do_lower_case = do_lower_case
        self.prompts = dict(prompts or {})
        self._decoder_parent, self._decoder_attr = self._locate_output_embeddings()
        self.query_static: SparseStaticEmbedding | None = None
        if query_static is not None:
            self.set_query_static(query_static)

    @property
    def is_inference_free(self) -> bool:
        """Queries are encoded by token weights (no model forward); documents by the MLM."""
        return self.query_static is not None

    def set_query_static(self, query_static: SparseStaticEmbedding | None) -> None:
        """Make the model inference-free with these query token weights (None: queries use the MLM again)."""
        if query_static is not None and query_static.vocab_size > self.vocab_size:
            raise CheckpointError(
                f"query token weights cover {query_static.vocab_size} tokens, the MLM's vocabulary has {self.vocab_size}"
            )
        self.query_static = query_static

    # ---- loading and saving ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        max_seq_length: int | None = None,
        pooling: PoolingConfig | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        query_weights: str | Path | None = None,
    ) -> SpladeModel:
        """Load a local directory or Hub id: an MLM checkpoint or a SparseEncoder directory.

        Inference-free checkpoints (a sentence-transformers Router with a SparseStaticEmbedding query
        route, or an MLM directory with an OpenSearch `idf.json`) load with their query token weights;
        `query_weights` (an idf.json path) gives any MLM such a query side, or replaces it.
        An encoder-only checkpoint (e.g. `BertModel`) gets a freshly initialised MLM head tied to
        the word embeddings, with a warning: fine as a starting point for training, not for search.
        """
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        directory = resolve_checkpoint(name_or_path, revision=revision)
        layout: SparseEncoderLayout = read_layout(directory)
        try:
            mlm, info = AutoModelForMaskedLM.from_pretrained(
                str(layout.transformer_dir),
                output_loading_info=True,
                trust_remote_code=trust_remote_code,
            )
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load a masked-language model from {directory}: {exc}") from exc
        missing = [k for k in info.get("missing_keys", []) if "position_ids" not in k]
        if missing:
            logger.warning(
                "%s has no trained MLM head (%d weights newly initialised, e.g. %s); the head is tied "
                "to the word embeddings. Train before using it for retrieval.",
                directory, len(missing), missing[0],
            )
        tokenizer = AutoTokenizer.from_pretrained(str(layout.transformer_dir))
        if not getattr(tokenizer, "is_fast", False):
            raise CheckpointError(f"{directory}: a fast (Rust) tokenizer is required (tokenizer.json)")
        limit = max_seq_length or layout.max_seq_length or _model_max_length(mlm, tokenizer)
        mlm.eval()
        return cls(
            mlm,
            tokenizer,
            pooling=pooling or layout.pooling,
            max_seq_length=limit,
            do_lower_case=layout.do_lower_case,
            prompts=layout.prompts,
            query_static=_load_query_static(directory, layout, tokenizer, query_weights),
        )

    def save(self, directory: str | Path) -> Path:
        """Write a directory that both this library and sentence-transformers' SparseEncoder load.

        An inference-free model is written as a sentence-transformers Router (query route: the token
        weights as a SparseStaticEmbedding; document route: the MLM and SpladePooling).
        """
        import transformers

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        transformer_dir = directory / ROUTER_TRANSFORMER_DIR if self.query_static is not None else directory
        self.mlm.save_pretrained(str(transformer_dir))  # type: ignore[operator]  # a transformers model, typed as nn.Module
        self.tokenizer.save_pretrained(str(transformer_dir))
        versions = {"pytorch": torch.__version__, "transformers": transformers.__version__}
        if self.query_static is not None:
            self.query_static.save(directory / ROUTER_QUERY_DIR)
        write = write_router_layout if self.query_static is not None else write_layout
        write(
            directory,
            pooling=self.pooling,
            max_seq_length=self.max_seq_length,
            do_lower_case=self.do_lower_case,
            prompts=self.prompts,
            vocab_size=self.vocab_size,
            versions=versions,
        )
        return directory

    # ---- vocabulary ---------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self.output_embeddings.weight.shape[0])

    @property
    def device(self) -> torch.device:
        return self.output_embeddings.weight.device

    def id_to_token(self) -> list[str]:
        """Vocabulary as a list indexed by id (for decoding sparse vectors)."""
        vocab = self.tokenizer.get_vocab()
        tokens = [""] * max(self.vocab_size, len(vocab))
        for token, idx in vocab.items():
            if idx < len(tokens):
                tokens[idx] = token
        return tokens

    # ---- forward paths ------------------------------------------------------------------------------
    @property
    def output_embeddings(self) -> nn.Linear:
        """The vocabulary projection (an nn.Linear in transformers' MLM heads)."""
        decoder: nn.Linear = getattr(self._decoder_parent, self._decoder_attr)
        return decoder

    def prepare_route(self, device: torch.device, plan: PrecisionPlan, *, features: CpuFeatures | None = None) -> VocabProjection:
        """Put this model into precision route `plan` in place and return its vocabulary projection.

        The one route set-up shared by the encoder and the `auto` probe: cast to the plan's dtype on `device`, int8
        body layers when the plan asks (`int8-full`), and the projection built with the bias taken in fp32 before the
        cast (it is added after the max, in fp32).
        """
        decoder = self.output_embeddings
        bias = getattr(decoder, "bias", None)
        fp32_bias = None if bias is None else bias.detach().to(device=device, dtype=torch.float32, copy=True)
        self.to(device=device, dtype=plan.dtype).eval()
        if plan.int8_body:
            from trainer.quantization import quantize_linears  # imported when used: needs oneDNN int8 kernels

            quantize_linears(self.mlm, skip=self.output_embeddings, features=features, per_token=plan.token_scaled_body)
        return build_projection(self.output_embeddings.weight, fp32_bias, plan)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """Differentiable SPLADE vectors (batch, vocab): pool(activation(logits)) over real tokens.

        Max pooling never builds (batch, length, vocab): the max is taken on raw logits slice by slice and
        its gradient flows through the winning token only (`trainer.pooling`). Sum pooling uses full logits.
        """
        if self.pooling.pooling_strategy == "max":
            hidden = self.hidden_states(input_ids, attention_mask, **extra)
            decoder = self.output_embeddings
            raw = max_over_tokens(hidden, attention_mask, decoder.weight)
            bias = getattr(decoder, "bias", None)
            if bias is not None:
                raw = raw + bias
            return activate(raw.float() if raw.dtype in (torch.float16, torch.bfloat16) else raw, self.pooling.activation_function)
        logits = self.mlm(input_ids=input_ids, attention_mask=attention_mask, **extra).logits
        mask = attention_mask.unsqueeze(-1).to(logits.dtype)
        return (activate(logits, self.pooling.activation_function) * mask).sum(dim=1)

    def embed(self, features: dict[str, torch.Tensor], role: str = "document") -> torch.Tensor:
        """Differentiable vectors of tokenised texts of a role: queries of an inference-free model use
        the token weights (features tokenised without special tokens), everything else `forward`."""
        if role == "query" and self.query_static is not None:
            vectors: torch.Tensor = self.query_static(features["input_ids"], features["attention_mask"])
            if vectors.shape[1] < self.vocab_size:
                vectors = torch.nn.functional.pad(vectors, (0, self.vocab_size - vectors.shape[1]))
            return vectors
        embedded: torch.Tensor = self(**features)
        return embedded

    @contextlib.contextmanager
    def _headless(self) -> Iterator[nn.Module]:
        """Run the MLM without its vocabulary projection; yields that projection."""
        decoder = self.output_embeddings
        setattr(self._decoder_parent, self._decoder_attr, nn.Identity())
        try:
            yield decoder
        finally:
            setattr(self._decoder_parent, self._decoder_attr, decoder)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """Token states right before the vocabulary projection (batch, length, hidden)."""
        with self._headless():
            hidden: torch.Tensor = self.mlm(input_ids=input_ids, attention_mask=attention_mask, **extra).logits
            return hidden

    def inference_projection(self) -> DenseProjection:
        """The vocabulary projection in the model's current dtype, for `pooled_logits` (no weight copy)."""
        decoder = self.output_embeddings
        return DenseProjection(decoder.weight, getattr(decoder, "bias", None))

    @torch.inference_mode()
    def pooled_logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        tile_elements: int | None = None,
        projection: VocabProjection | None = None,
        **extra: torch.Tensor,
    ) -> torch.Tensor:
        """SPLADE vectors (batch, vocab) in fp32 without materialising (batch, length, vocab).

        Max pooling: log1p∘relu is monotone, so the max over tokens is taken on raw logits, one
        tile of vocabulary rows x documents at a time, and activated once, in fp32. Sum pooling must
        activate every token; it is accumulated tile by tile. `tile_elements` bounds the logits held at
        once (default: by device, `trainer.pooling.tiling_for`); `projection` replaces the model's own
        vocabulary projection (e.g. the encoder's int8 one).
        """
        projection = projection or self.inference_projection()
        groups = forward_chunks(attention_mask)
        if len(groups) == 1:
            first, stop, length = groups[0]
            return self._pooled(input_ids[:, :length], attention_mask[:, :length], projection, tile_elements, {k: v[:, :length] for k, v in extra.items()})
        parts = [
            self._pooled(input_ids[first:stop, :length], attention_mask[first:stop, :length], projection, tile_elements, {k: v[first:stop, :length] for k, v in extra.items()})
            for first, stop, length in groups
        ]
        return torch.cat(parts)

    def _pooled(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, projection: VocabProjection, tile_elements: int | None, extra: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """`pooled_logits` of one forward group."""
        hidden = self.hidden_states(input_ids, attention_mask, **extra)
        if self.pooling.pooling_strategy == "max":
            raw = pool_max(projection, hidden, attention_mask, tile_elements)
            return activate(raw, self.pooling.activation_function)
        act = functools.partial(activate, activation_function=self.pooling.activation_function)
        return pool_sum(projection, hidden, attention_mask, act, tile_elements)

    # ---- internals ----------------------------------------------------------------------------------
    def _locate_output_embeddings(self) -> tuple[nn.Module, str]:
        target = self.mlm.get_output_embeddings()  # type: ignore[operator]  # a transformers model, typed as nn.Module
        if target is None:
            raise CheckpointError(f"{type(self.mlm).__name__} has no output (vocabulary) projection")
        for name, module in self.mlm.named_modules():
            if module is target and name:
                parent_name, _, attr = name.rpartition(".")
                return self.mlm.get_submodule(parent_name), attr
        raise CheckpointError(f"cannot locate the vocabulary projection of {type(self.mlm).__name__}")


def _load_query_static(
    directory: Path, layout: SparseEncoderLayout, tokenizer: Any, query_weights: str | Path | None
) -> SparseStaticEmbedding | None:
    """The query token weights an inference-free checkpoint holds, or those `query_weights` names."""
    if query_weights is not None:
        return SparseStaticEmbedding.from_idf_json(query_weights, tokenizer)
    source = layout.query_weights
    if source is None:
        return None
    if source.module_dir is not None:
        return SparseStaticEmbedding.load(source.module_dir, root=directory)
    assert source.idf_json is not None
    logger.info("%s: inference-free (query token weights from %s)", directory, source.idf_json.name)
    return SparseStaticEmbedding.from_idf_json(source.idf_json, tokenizer)


def _model_max_length(mlm: nn.Module, tokenizer: Any) -> int:
    limits = [DEFAULT_MAX_SEQ_LENGTH]
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 100_000:
        limits.append(tok_max)
    pos_max = getattr(getattr(mlm, "config", None), "max_position_embeddings", None)
    if isinstance(pos_max, int) and pos_max > 0:
        limits.append(pos_max)
    return min(limits)

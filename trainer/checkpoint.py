"""Reading and writing the sentence-transformers SparseEncoder directory layout.

A checkpoint is either a plain Hugging Face `*ForMaskedLM` directory, or a sentence-transformers
SparseEncoder directory (`modules.json` + a `SpladePooling` module folder). We read both layouts
sentence-transformers has used (v5 `MLMTransformer`, v5.4+/v6 `Transformer` with
`transformer_task: fill-mask`) and write the v6 layout, which both recent versions load.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from trainer.errors import SpladeError

logger = logging.getLogger(__name__)

POOLING_MODULE_DIR = "1_SpladePooling"
_POOLING_TYPE = "sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling"
_TRANSFORMER_TYPE = "sentence_transformers.base.modules.transformer.Transformer"


class CheckpointError(SpladeError, ValueError):
    """A checkpoint directory is missing, unreadable, or of an unsupported layout."""


class PoolingConfig(BaseModel):
    """How token logits become one vector: `max` or `sum` over tokens of activation(logits)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    pooling_strategy: Literal["max", "sum"] = "max"
    activation_function: Literal["relu", "log1p_relu"] = "relu"


class SparseEncoderLayout(BaseModel):
    """What a checkpoint directory says about how to run it (beyond the HF weights)."""

    model_config = ConfigDict(frozen=True)

    transformer_dir: Path
    pooling: PoolingConfig = Field(default_factory=PoolingConfig)
    max_seq_length: int | None = None
    do_lower_case: bool = False
    prompts: dict[str, str] = Field(default_factory=dict)
    is_sentence_transformers: bool = False


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, (dict, list)):
        raise CheckpointError(f"{path} is not a JSON object")
    return data  # type: ignore[return-value]


def read_layout(directory: Path) -> SparseEncoderLayout:
    """Describe a local checkpoint directory (plain MLM or sentence-transformers SparseEncoder)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is not a directory")
    modules_file = directory / "modules.json"
    if not modules_file.exists():
        if not (directory / "config.json").exists():
            raise CheckpointError(f"{directory} has neither modules.json nor config.json")
        return SparseEncoderLayout(transformer_dir=directory)

    modules = _read_json(modules_file)
    if not isinstance(modules, list) or not modules:
        raise CheckpointError(f"{modules_file} must be a non-empty list of modules")
    kinds = {str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules}
    if not kinds & {"SpladePooling", "Router"}:
        return _dense_sentence_transformer_base(directory, modules)
    transformer_dir: Path | None = None
    pooling = PoolingConfig()
    max_seq_length: int | None = None
    do_lower_case = False
    for module in modules:
        kind = str(module.get("type", ""))
        module_dir = directory / str(module.get("path", ""))
        short = kind.rsplit(".", 1)[-1]
        if short in {"MLMTransformer", "Transformer"}:
            st_config_file = module_dir / "sentence_bert_config.json"
            st_config = _read_json(st_config_file) if st_config_file.exists() else {}
            task = st_config.get("transformer_task", "fill-mask" if short == "MLMTransformer" else None)
            if short == "Transformer" and task not in (None, "fill-mask"):
                raise CheckpointError(
                    f"{directory}: Transformer module has transformer_task={task!r}; SPLADE needs 'fill-mask'"
                )
            transformer_dir = module_dir
            max_seq_length = st_config.get("max_seq_length")
            do_lower_case = bool(st_config.get("do_lower_case", False))
        elif short == "SpladePooling":
            pooling = PoolingConfig.model_validate(_read_json(module_dir / "config.json"))
        elif short == "Router":
            raise CheckpointError(
                f"{directory}: inference-free (Router) SparseEncoder checkpoints are not supported yet"
            )
        else:
            raise CheckpointError(f"{directory}: unsupported module type {kind!r} in modules.json")
    if transformer_dir is None:
        raise CheckpointError(f"{directory}: modules.json has no (MLM)Transformer module")
    prompts: dict[str, str] = {}
    st_model_config = directory / "config_sentence_transformers.json"
    if st_model_config.exists():
        raw = _read_json(st_model_config)
        if raw.get("model_type") not in (None, "SparseEncoder"):
            raise CheckpointError(f"{directory}: model_type is {raw.get('model_type')!r}, not SparseEncoder")
        prompts = {k: v for k, v in (raw.get("prompts") or {}).items() if isinstance(v, str)}
    return SparseEncoderLayout(
        transformer_dir=transformer_dir,
        pooling=pooling,
        max_seq_length=max_seq_length,
        do_lower_case=do_lower_case,
        prompts=prompts,
        is_sentence_transformers=True,
    )


def _dense_sentence_transformer_base(directory: Path, modules: list[dict[str, Any]]) -> SparseEncoderLayout:
    """A dense SentenceTransformer directory: only its transformer is usable, as a base checkpoint."""
    for module in modules:
        if str(module.get("type", "")).rsplit(".", 1)[-1] == "Transformer":
            base = directory / str(module.get("path", ""))
            logger.warning(
                "%s is a dense SentenceTransformer model; using only its transformer as a base checkpoint", directory
            )
            return SparseEncoderLayout(transformer_dir=base)
    raise CheckpointError(f"{directory}: modules.json has no Transformer module and no SpladePooling")


def write_layout(
    directory: Path,
    *,
    pooling: PoolingConfig,
    max_seq_length: int,
    do_lower_case: bool,
    prompts: dict[str, str],
    vocab_size: int,
    versions: dict[str, str],
) -> None:
    """Write the sentence-transformers files around HF weights already saved in `directory`."""
    directory = Path(directory)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": _TRANSFORMER_TYPE},
        {"idx": 1, "name": "1", "path": POOLING_MODULE_DIR, "type": _POOLING_TYPE},
    ]
    (directory / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    pooling_dir = directory / POOLING_MODULE_DIR
    pooling_dir.mkdir(parents=True, exist_ok=True)
    pooling_config = {**pooling.model_dump(), "embedding_dimension": vocab_size}
    (pooling_dir / "config.json").write_text(json.dumps(pooling_config, indent=2), encoding="utf-8")
    st_config = {
        "transformer_task": "fill-mask",
        "modality_config": {"text": {"method": "forward", "method_output_name": "logits"}},
        "module_output_name": "token_embeddings",
        "max_seq_length": max_seq_length,
        "do_lower_case": do_lower_case,
    }
    (directory / "sentence_bert_config.json").write_text(json.dumps(st_config, indent=2), encoding="utf-8")
    model_config = {
        "__version__": versions,
        "model_type": "SparseEncoder",
        "prompts": {"query": prompts.get("query", ""), "document": prompts.get("document", "")},
        "default_prompt_name": None,
        "similarity_fn_name": "dot",
    }
    (directory / "config_sentence_transformers.json").write_text(
        json.dumps(model_config, indent=2), encoding="utf-8"
    )


def resolve_checkpoint(name_or_path: str | Path, *, revision: str | None = None) -> Path:
    """A local directory as is; otherwise a Hugging Face Hub id, downloaded (fails fast offline)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    name = str(name_or_path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise CheckpointError(f"checkpoint directory {name!r} does not exist")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - transformers depends on huggingface_hub
        raise CheckpointError("huggingface_hub is needed to load models by Hub id") from exc
    try:
        return Path(snapshot_download(name, revision=revision))
    except Exception as exc:
        raise CheckpointError(
            f"{name!r} is not a local directory and could not be fetched from the Hugging Face Hub "
            f"({type(exc).__name__}: {exc}). Offline? Pass a local checkpoint directory instead."
        ) from exc

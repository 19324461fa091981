"""SPLADE training: losses, GradCache, no-duplicates data, the loop, configs and a small evaluator.

Entry points: `load_config(path) -> TrainConfig` and `run_training(config) -> Path` (final model dir).
Never imports `splade_connectors`; evaluation is a hook `evaluate(model) -> dict[str, float]`.
"""

from trainer.errors import ConfigError
from trainer.training.config import TrainConfig, bundled_config, load_config, parse_config
from trainer.training.data import TrainingExamples, load_hf_examples, load_jsonl_examples
from trainer.training.loop import Trainer, run_training
from trainer.training.losses import LossParts, RegularizerSchedule, SpladeLoss, flops, sparse_mnrl_loss
from trainer.training.sampler import NoDuplicatesBatchSampler, SamplerState

__all__ = [
    "ConfigError",
    "LossParts",
    "NoDuplicatesBatchSampler",
    "RegularizerSchedule",
    "SamplerState",
    "SpladeLoss",
    "TrainConfig",
    "Trainer",
    "TrainingExamples",
    "bundled_config",
    "flops",
    "load_config",
    "load_hf_examples",
    "load_jsonl_examples",
    "parse_config",
    "run_training",
    "sparse_mnrl_loss",
]

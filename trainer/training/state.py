"""Checkpoints: the model in the sentence-transformers layout plus `trainer_state.pt` for exact resume.

`trainer_state.pt` holds the optimiser, LR scheduler, sampler state, every RNG stream (Python,
NumPy, torch CPU and CUDA) and the step, so a run resumed from step N ends with the same weights
as an uninterrupted one.
"""

from __future__ import annotations

import logging
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.model import SpladeModel

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def capture_rng() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainerState:
    """What `trainer_state.pt` holds besides the model weights."""

    step: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    sampler: dict[str, int]
    rng: dict[str, Any]
    total_steps: int


def save_checkpoint(directory: Path, model: SpladeModel, state: TrainerState) -> Path:
    """Write the model (loadable by sentence-transformers' SparseEncoder) and the trainer state."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory)
    torch.save(state.__dict__, directory / STATE_FILE)
    logger.info("saved checkpoint %s (step %d)", directory, state.step)
    return directory


def load_trainer_state(directory: Path) -> TrainerState:
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no {STATE_FILE}: not a training checkpoint")
    data = torch.load(path, map_location="cpu", weights_only=False)
    return TrainerState(**data)


def list_checkpoints(output_dir: Path) -> list[Path]:
    """`checkpoint-<step>` folders holding a trainer state, oldest first."""
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if (m := _CHECKPOINT_RE.match(p.name)) and (p / STATE_FILE).is_file()]
    return [p for _, p in sorted(found)]


def prune_checkpoints(output_dir: Path, keep: int | None) -> None:
    if keep is None:
        return
    for path in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
        logger.info("removed old checkpoint %s", path)

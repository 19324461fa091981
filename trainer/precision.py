"""Which numeric precision (route) an encoder runs in.

The SPLADE hot path is the transformer body plus one dense product, tokens x hidden @ hidden x 30,522 (the
vocabulary projection). At the shipped model's size (2 x 128) the projection is most of the work; at DistilBERT
and BERT-base sizes (6-12 x 768) the body is. Which precision is fastest depends on the CPU in ways its flags do not
predict (`trainer.cpu`), so `"auto"` measures (`trainer.probe`).

`resolve_precision(device, dtype)` turns the user's `dtype` into a `PrecisionPlan`:

- `None` (the default): exact fp32 on CPU; bf16 on CUDA where supported, else fp16.
- `"auto"`: on CPU, the fastest of the routes whose retrieval quality cost is documented as negligible
  (`AUTO_CANDIDATES`), measured on the model's own shapes at load (`trainer.probe`, cached per CPU, torch version,
  thread count and architecture); never slower than fp32 in that measurement. The `None` choice on CUDA.
- `"fp32"`, `"bf16"`, `"fp16"` or a `torch.dtype`: the model in that dtype (bf16/fp16 emulated on CPUs without
  native support: slow, with a warning).
- `"int8"` (CPU): int8 vocabulary projection, fp32 body (`trainer.quantization.Int8Projection`).
- `"int8-full"` (CPU): the body's Linear layers in int8 too (`trainer.quantization.Int8Linear`), activations scaled
  per token; its quality cost is measured in docs/encoding.md.
- `"int8-tensor"` (CPU): `int8-full` with one activation scale per tensor in the body (the kernel's own dynamic
  quantisation, bias fused: no rescaling passes), the projection still per token; faster, its quality cost is
  measured in docs/encoding.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, Literal

import torch

from trainer.cpu import CpuFeatures, cpu_features
from trainer.errors import ConfigError
from trainer.pooling import DenseProjection, VocabProjection

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "fp16", "int8", "int8-full", "int8-tensor", "fp64"]

PRECISION_NAMES: dict[str, Precision] = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "int8": "int8", "qint8": "int8",
    "int8-full": "int8-full", "int8_full": "int8-full",
    "int8-tensor": "int8-tensor", "int8_tensor": "int8-tensor",
    "fp64": "fp64", "float64": "fp64", "double": "fp64",
}
AUTO: Final = "auto"
CHOICES = ("fp32", "bf16", "fp16", "int8", "int8-full", "int8-tensor", "auto")  # what users pass (`--dtype`)
CPU_ONLY: frozenset[Precision] = frozenset({"int8", "int8-full", "int8-tensor"})
# Routes "auto" may pick on CPU: their quality cost was measured negligible (docs/encoding.md, "Precision routes":
# nDCG@10 and recall@100 on SciFact within 0.5% of fp32). bf16 only where the CPU multiplies bf16 natively.
AUTO_CANDIDATES: tuple[Precision, ...] = ("fp32", "int8", "int8-full", "int8-tensor", "bf16")
_DTYPES: dict[Precision, torch.dtype] = {
    "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32,
    "int8-full": torch.float32, "int8-tensor": torch.float32, "fp64": torch.float64,
}


@dataclass(frozen=True)
class PrecisionPlan:
    """What the encoder runs in: the dtype of the model and whether the vocabulary projection is int8."""

    precision: Precision
    reason: str
    native: bool = True  # False: bf16/fp16 on a CPU without hardware support (projection on fp32 kernels)
    measure: bool = False  # True: "auto" on CPU, to be replaced by the fastest measured route (`trainer.probe`)
    timings: tuple[tuple[str, float], ...] = ()  # "auto": seconds per candidate route in the probe

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's weights and activations (int8 keeps an fp32 body)."""
        return _DTYPES[self.precision]

    @property
    def int8_projection(self) -> bool:
        return self.precision in ("int8", "int8-full", "int8-tensor")

    @property
    def int8_body(self) -> bool:
        """The transformer body's Linear layers run in int8 too."""
        return self.precision in ("int8-full", "int8-tensor")

    @property
    def token_scaled_body(self) -> bool:
        """The int8 body scales activations per token (`int8-full`) rather than per tensor (`int8-tensor`)."""
        return self.precision == "int8-full"


def parse_precision(dtype: str | torch.dtype) -> Precision | Literal["auto"]:
    """A precision name or torch dtype -> its canonical name; a clear error for anything else."""
    if isinstance(dtype, torch.dtype):
        for name, value in _DTYPES.items():
            if value == dtype and name not in CPU_ONLY:
                return name
        raise ConfigError(f"unsupported dtype {dtype}; use one of {', '.join(CHOICES)} (or float64)")
    key = str(dtype).strip().lower()
    if key == AUTO:
        return AUTO
    if key not in PRECISION_NAMES:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(CHOICES)}")
    return PRECISION_NAMES[key]


def resolve_precision(
    device: torch.device, dtype: str | torch.dtype | None = None, *, features: CpuFeatures | None = None
) -> PrecisionPlan:
    """The precision to encode in on `device` for the requested `dtype` (see the module docstring)."""
    requested = None if dtype is None else parse_precision(dtype)
    if device.type == "cuda":
        if requested in CPU_ONLY:
            raise ConfigError(f"dtype {requested!r} is a CPU option (int8 kernels); on CUDA use bf16 or fp16")
        if requested is None or requested == AUTO:
            bf16 = torch.cuda.is_bf16_supported()
            return PrecisionPlan("bf16" if bf16 else "fp16", "CUDA default: " + ("bf16 supported" if bf16 else "no bf16, fp16"))
        return PrecisionPlan(requested, "requested")
    if device.type != "cpu":
        if requested is None or requested == AUTO:
            return PrecisionPlan("fp32", f"default on {device.type}")
        if requested in CPU_ONLY:
            raise ConfigError(f"dtype {requested!r} is a CPU option; not available on {device.type}")
        return PrecisionPlan(requested, "requested")
    cpu = features or cpu_features()
    if requested is None:
        return PrecisionPlan("fp32", "CPU default: exact fp32")
    if requested == AUTO:
        return PrecisionPlan("fp32", f"auto: fp32 until the candidates are measured ({cpu.describe()})", measure=True)
    if (requested == "bf16" and not cpu.native_bf16) or (requested == "fp16" and not cpu.amx_fp16):
        logger.warning(
            "dtype %s on a CPU without %s (%s): the transformer runs on slow emulated kernels and the vocabulary "
            "projection on fp32 kernels (same numbers); this is slower than fp32. dtype='auto' picks the fastest "
            "precision for this CPU", requested, "AMX-BF16/AVX512-BF16" if requested == "bf16" else "AMX-FP16", cpu.describe(),
        )
        return PrecisionPlan(requested, "requested; no native support on this CPU", native=False)
    return PrecisionPlan(requested, "requested")


def build_projection(weight: torch.Tensor, bias: torch.Tensor | None, plan: PrecisionPlan) -> VocabProjection:
    """The vocabulary projection for `plan`: the model's own weight (dense) or an int8 copy of it.

    `bias` should be the fp32 bias taken before the model was cast: it is added after the max, in fp32.
    """
    if plan.int8_projection:
        from trainer.quantization import Int8Projection  # imported when used: needs oneDNN int8 kernels

        return Int8Projection(weight, bias)
    return DenseProjection(weight, bias, fp32_kernels=not plan.native)


def auto_candidates(features: CpuFeatures | None = None) -> list[Precision]:
    """The routes "auto" measures on this CPU: `AUTO_CANDIDATES`, bf16 only with native bf16 (emulated bf16 is
    always slower than fp32), int8 routes only where PyTorch has the kernels."""
    from trainer.quantization import dynamic_int8_available, int8_available

    cpu = features or cpu_features()
    available = {"fp32": True, "bf16": cpu.native_bf16, "int8": int8_available(), "int8-full": int8_available() and dynamic_int8_available(),
                 "int8-tensor": int8_available() and dynamic_int8_available()}
    return [name for name in AUTO_CANDIDATES if available.get(name, False)]

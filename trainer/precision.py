"""Which numeric precision an encoder runs in, and what this CPU can multiply fast.

The SPLADE hot path is one dense product, tokens x hidden @ hidden x 30,522 (the vocabulary projection).
CPUs with AMX or AVX-512 BF16 run it several times faster in bf16 than in fp32; CPUs without them
emulate bf16 in software and run it many times *slower* (measured here: 13x slower on an AVX2-only EPYC).
int8 dot products are fast with VNNI/AMX-INT8; without VNNI the 8-bit activations must be reduced to
7 bits to avoid saturating the 16-bit intermediate sums of AVX2's `vpmaddubsw`.

`resolve_precision(device, dtype)` turns the user's `dtype` into a `PrecisionPlan`:

- `None` (the default): exact fp32 on CPU; bf16 on CUDA where supported, else fp16.
- `"auto"`: the fastest precision whose retrieval quality was measured equal to fp32 (see the README's
  "Encoding" section): bf16 on CPUs with native bf16 (AMX-BF16 or AVX512-BF16), fp32 on other CPUs;
  the `None` choice on CUDA.
- `"fp32"`, `"bf16"`, `"fp16"`, `"int8"` (CPU only: int8 vocabulary projection, fp32 body) or a `torch.dtype`.
"""

from __future__ import annotations

import functools
import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import torch

from trainer.pooling import DenseProjection, VocabProjection

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "fp16", "int8", "fp64"]

PRECISION_NAMES: dict[str, Precision] = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "int8": "int8", "qint8": "int8",
    "fp64": "fp64", "float64": "fp64", "double": "fp64",
}
AUTO: Final = "auto"
_DTYPES: dict[Precision, torch.dtype] = {
    "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32, "fp64": torch.float64,
}


@dataclass(frozen=True)
class CpuFeatures:
    """The instruction-set extensions that matter for low-precision matrix products."""

    flags: frozenset[str]

    @classmethod
    def from_flags(cls, flags: str | list[str] | set[str] | frozenset[str]) -> CpuFeatures:
        names = flags.split() if isinstance(flags, str) else flags
        return cls(frozenset(name.strip().lower() for name in names))

    @property
    def amx_bf16(self) -> bool:
        return "amx_bf16" in self.flags

    @property
    def amx_int8(self) -> bool:
        return "amx_int8" in self.flags

    @property
    def amx_fp16(self) -> bool:
        return "amx_fp16" in self.flags

    @property
    def avx512_bf16(self) -> bool:
        return "avx512_bf16" in self.flags

    @property
    def native_bf16(self) -> bool:
        """bf16 products run in hardware (AMX tiles or AVX-512 BF16 dot products)."""
        return self.amx_bf16 or self.avx512_bf16

    @property
    def vnni(self) -> bool:
        """8-bit dot products accumulate in 32 bits without saturation (VNNI or AMX-INT8)."""
        return self.amx_int8 or "avx512_vnni" in self.flags or "avx_vnni" in self.flags

    def describe(self) -> str:
        shown = [f for f in ("amx_bf16", "amx_int8", "amx_fp16", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2") if f in self.flags]
        return ", ".join(shown) if shown else "none of avx2/avx512/amx"


@functools.cache
def cpu_features() -> CpuFeatures:
    """This machine's CPU features (Linux: /proc/cpuinfo; elsewhere: torch's vectorisation level only)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(("flags", "Features")):
                return CpuFeatures.from_flags(line.partition(":")[2])
    capability = torch.backends.cpu.get_cpu_capability().lower()  # "avx2", "avx512", "default", ...
    flags = {"avx2"} if capability.startswith("avx") else set()
    if capability == "avx512":
        flags.add("avx512f")
    logger.debug("no /proc/cpuinfo on %s; CPU features from torch: %s", platform.system(), capability)
    return CpuFeatures.from_flags(flags)


@dataclass(frozen=True)
class PrecisionPlan:
    """What the encoder runs in: the dtype of the model and whether the vocabulary projection is int8."""

    precision: Precision
    reason: str
    native: bool = True  # False: bf16/fp16 on a CPU without hardware support (projection on fp32 kernels)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's weights and activations (int8 keeps an fp32 body)."""
        return _DTYPES[self.precision]

    @property
    def int8_projection(self) -> bool:
        return self.precision == "int8"


def parse_precision(dtype: str | torch.dtype) -> Precision | Literal["auto"]:
    """A precision name or torch dtype -> its canonical name; a clear error for anything else."""
    if isinstance(dtype, torch.dtype):
        for name, value in _DTYPES.items():
            if value == dtype and name != "int8":
                return name
        raise ValueError(f"unsupported dtype {dtype}; use one of fp32, bf16, fp16, int8, auto (or float64)")
    key = str(dtype).strip().lower()
    if key == AUTO:
        return AUTO
    if key not in PRECISION_NAMES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of fp32, bf16, fp16, int8, auto")
    return PRECISION_NAMES[key]


def resolve_precision(
    device: torch.device, dtype: str | torch.dtype | None = None, *, features: CpuFeatures | None = None
) -> PrecisionPlan:
    """The precision to encode in on `device` for the requested `dtype` (see the module docstring)."""
    requested = None if dtype is None else parse_precision(dtype)
    if device.type == "cuda":
        if requested == "int8":
            raise ValueError("dtype 'int8' is a CPU option (int8 vocabulary projection); on CUDA use bf16 or fp16")
        if requested is None or requested == AUTO:
            bf16 = torch.cuda.is_bf16_supported()
            return PrecisionPlan("bf16" if bf16 else "fp16", "CUDA default: " + ("bf16 supported" if bf16 else "no bf16, fp16"))
        return PrecisionPlan(requested, "requested")
    if device.type != "cpu":
        if requested is None or requested == AUTO:
            return PrecisionPlan("fp32", f"default on {device.type}")
        if requested == "int8":
            raise ValueError(f"dtype 'int8' is a CPU option; not available on {device.type}")
        return PrecisionPlan(requested, "requested")
    cpu = features or cpu_features()
    if requested is None:
        return PrecisionPlan("fp32", "CPU default: exact fp32")
    if requested == AUTO:
        if cpu.native_bf16:
            return PrecisionPlan("bf16", f"auto: native bf16 on this CPU ({cpu.describe()})")
        return PrecisionPlan("fp32", f"auto: no native bf16 on this CPU ({cpu.describe()})")
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
        from trainer.quantization import Int8Projection

        return Int8Projection(weight, bias)
    return DenseProjection(weight, bias, fp32_kernels=not plan.native)

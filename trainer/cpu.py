"""What this CPU is and which instruction-set extensions it has for low-precision matrix products.

Kept apart from the precision choice (`trainer.precision`) and the int8 kernels (`trainer.quantization`), which
both read it. CPU flags say what the hardware *can* do, not what runs fastest (an AVX512-BF16 Xeon without AMX ran a
bf16 GEMM at about half its fp32 speed): `trainer.probe` measures; the flags only rule out what cannot be fast
(bf16 without any native support is emulated and always slow) and choose the int8 activation range.
"""

from __future__ import annotations

import functools
import logging
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


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




@functools.cache
def cpu_model_name() -> str:
    """The CPU's model name (`/proc/cpuinfo`), or the platform's processor string."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine() or "unknown CPU"

"""The int8 vocabulary projection for CPU encoding: oneDNN u8 x s8 products with fp32 output.

Weights are quantised once, symmetrically per vocabulary row (one scale per term, so rare terms with small
weights keep their resolution). Activations are quantised symmetrically per token: each token's states are
divided by their own largest magnitude before the GEMM (one global scale for the kernel) and its logits are
multiplied back after it; on SciFact documents this kept 97-98% of the active terms where one scale per
batch kept 95-97%. Without VNNI/AMX-INT8 the activations use 7 bits: AVX2's `vpmaddubsw` adds pairs of
u8 x s8 products in 16 bits and saturates with 8-bit activations.

The product goes through `torch.ops.onednn.qlinear_pointwise` on plain int8 tensors (the kernel PyTorch's
own x86 int8 inference uses; no deprecated quantised-tensor API). The max over tokens, the bias and the
activation stay in fp32, as for the other precisions (`trainer.pooling.pool_max`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from trainer.pooling import SLICE_ALIGN, Tiling
from trainer.precision import CpuFeatures, cpu_features

logger = logging.getLogger(__name__)

PACKED_SLICE_ROWS = (256, 1024, 4096)  # the weight is packed at these slice sizes; the pooling picks one per batch


class Int8Unavailable(RuntimeError):
    """This PyTorch build has no oneDNN int8 linear kernel."""


def int8_available() -> bool:
    """True when PyTorch ships the oneDNN int8 linear ops (x86 builds with oneDNN)."""
    try:
        return hasattr(torch.ops.onednn, "qlinear_pointwise") and torch.backends.mkldnn.is_available()
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class QuantizedBatch:
    """One batch of activations as uint8 around `zero_point`, each token scaled by its own `token_scales`."""

    values: torch.Tensor  # (tokens, H) uint8
    token_scales: torch.Tensor  # (tokens, 1) fp32: a token's logits are the kernel's output times this
    padding: torch.Tensor  # (tokens, 1) fp32: 0 for real tokens, -inf for padding
    zero_point: int


class Int8Projection:
    """hidden @ weight.T with int8 weights (per-row scales) and uint8 activations (per-batch scale)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, *, features: CpuFeatures | None = None) -> None:
        if weight.device.type != "cpu":
            raise ValueError(f"the int8 projection runs on CPU; the weight is on {weight.device}")
        if not int8_available():
            raise Int8Unavailable("this PyTorch build has no oneDNN int8 kernels (torch.ops.onednn.qlinear_pointwise)")
        weight = weight.detach().to(torch.float32)
        self._vocab = int(weight.shape[0])
        self.scales = (weight.abs().amax(dim=1) / 127.0).clamp_min(torch.finfo(torch.float32).tiny)
        self.weight_int8 = torch.round(weight / self.scales[:, None]).clamp_(-127, 127).to(torch.int8)
        self._zero_points = torch.zeros(self._vocab, dtype=torch.int32)
        self._bias = None if bias is None else bias.detach().to(torch.float32)
        self.levels = 255 if (features or cpu_features()).vnni else 127
        self._packed = {
            rows: [torch.ops.onednn.qlinear_prepack(self.weight_int8[start : start + rows], None) for start in range(0, self._vocab, rows)]
            for rows in PACKED_SLICE_ROWS
        }

    @property
    def vocab_size(self) -> int:
        return self._vocab

    @property
    def bias(self) -> torch.Tensor | None:
        return self._bias

    def buffer_dtype(self) -> None:
        return None  # qlinear_pointwise returns its own fp32 output

    @property
    def result_dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def masks_padding(self) -> bool:
        return True  # fused with the per-token rescaling

    def rows_per_tile(self, tiling: Tiling) -> int:
        """The packed slice size nearest the tiling's rows (rounding down, at least the smallest)."""
        fitting = [rows for rows in PACKED_SLICE_ROWS if rows <= tiling.rows]
        return max(fitting) if fitting else min(PACKED_SLICE_ROWS)

    def prepare(self, hidden: torch.Tensor, mask: torch.Tensor) -> QuantizedBatch:
        batch, length, width = hidden.shape
        flat = hidden.reshape(batch * length, width).to(torch.float32)
        half = self.levels // 2
        token_scales = flat.abs().amax(dim=1, keepdim=True).clamp_min_(torch.finfo(torch.float32).tiny) / half
        values = torch.round(flat / token_scales).add_(half).clamp_(0, 2 * half).to(torch.uint8)
        padding = torch.zeros(batch * length, 1, dtype=torch.float32, device=hidden.device)
        padding.masked_fill_(~mask.reshape(batch * length, 1).bool(), float("-inf"))
        return QuantizedBatch(values, token_scales, padding, half)

    def tile_logits(self, prepared: QuantizedBatch, start: int, rows: int, first_doc: int, docs: int, length: int, buffer: torch.Tensor) -> torch.Tensor:
        if rows not in self._packed or start % rows:
            raise ValueError(f"vocabulary tile {start}+{rows} is not one of the packed slices {PACKED_SLICE_ROWS}")
        stop = min(self._vocab, start + rows)
        tokens = slice(first_doc * length, (first_doc + docs) * length)
        logits: torch.Tensor = torch.ops.onednn.qlinear_pointwise(
            prepared.values[tokens], 1.0, prepared.zero_point, self._packed[rows][start // rows],
            self.scales[start:stop], self._zero_points[start:stop], None,
            1.0, 0, torch.float32, "none", [], "",
        )
        torch.addcmul(prepared.padding[tokens], logits, prepared.token_scales[tokens], out=logits)  # scale back, mask: one pass
        return logits.view(docs, length, stop - start).permute(2, 0, 1)


assert all(rows % SLICE_ALIGN == 0 for rows in PACKED_SLICE_ROWS)

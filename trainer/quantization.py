"""int8 on CPU: the vocabulary projection (`Int8Projection`) and the transformer body's Linear layers (`Int8Linear`).

The projection: oneDNN u8 x s8 products with fp32 output.

Weights are quantised once, symmetrically per vocabulary row (one scale per term, so rare terms with small
weights keep their resolution). Activations are quantised symmetrically per token: each token's states are
divided by their own largest magnitude before the GEMM (one global scale for the kernel) and its logits are
multiplied back after it; on SciFact documents this kept 97-98% of the active terms where one scale per
batch kept 95-97%. Without VNNI/AMX-INT8 the activations use 7 bits: AVX2's `vpmaddubsw` adds pairs of
u8 x s8 products in 16 bits and saturates with 8-bit activations.

The product goes through `torch.ops.onednn.qlinear_pointwise` on plain int8 tensors (the kernel PyTorch's
own x86 int8 inference uses; no deprecated quantised-tensor API). The max over tokens, the bias and the
activation stay in fp32, as for the other precisions (`trainer.pooling.pool_max`).

The body (`quantize_linears`, the `int8-full` precision): every Linear of the transformer becomes an `Int8Linear`,
int8 weights with one scale per output row and activations quantised per token at run time, on PyTorch's dynamic
int8 linear kernel (oneDNN; measured about twice the fp32 GEMM rate on an AVX2-only EPYC). Each token is divided by
its own largest magnitude before the kernel quantises the batch, so one outlier token does not coarsen the others,
and multiplied back after it; the bias is added in fp32. Without VNNI the kernel is asked for 7-bit activations
(`reduce_range`): 8-bit ones saturate AVX2's 16-bit intermediate sums (measured: 8x the error).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from trainer.cpu import CpuFeatures, cpu_features
from trainer.errors import ConfigError
from trainer.pooling import SLICE_ALIGN, Tiling

logger = logging.getLogger(__name__)

PACKED_SLICE_ROWS = (256, 1024, 4096)  # the weight is packed at these slice sizes; the pooling picks one per batch


class Int8Unavailable(ConfigError):
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


@dataclass
class PackedTokens:
    """One batch of activations as the kernel's weight operand: int8 per token, packed per document tile."""

    values: torch.Tensor  # (tokens, H) int8, padded tokens replaced by their document's first token
    token_scales: torch.Tensor  # (tokens,) fp32: the kernel's per-output-channel scales
    zero_points: torch.Tensor  # (tokens,) int32 zeros
    packed: dict[tuple[int, int], torch.Tensor]  # (first token, tokens) -> packed weight, built on first use


class Int8Projection:
    """hidden @ weight.T with int8 weights (per-row scales) and int8 activations (per-token scales).

    Two layouts of the same product. With VNNI / AMX-INT8 (8-bit activations) the tokens are the kernel's packed
    *weight* operand and the vocabulary rows its uint8 *activations* (int8 + 128, zero point 128): the per-token
    scales become the kernel's per-channel output scales (no rescaling pass over the logits), the logits come out
    (vocabulary rows, tokens) with tokens contiguous (the max over tokens is a contiguous reduction), the row scales
    are applied after the max (they are positive, so they commute with it) and padded tokens are copies of their
    document's first token (they cannot change the max: no masking pass). Measured on an AVX512-VNNI EPYC: ~15%
    less time for the projection and its max at DistilBERT size. Without VNNI the 8-bit vocabulary activations
    would saturate AVX2's 16-bit pair sums, so there the tokens stay the activations, with 7 bits (`levels` 127).
    """

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
        self.tokens_packed = self.levels == 255  # the layout (see the class docstring)
        self._packed: dict[int, list[torch.Tensor]] = {}
        if self.tokens_packed:
            self.vocab_uint8 = (self.weight_int8.to(torch.int16) + 128).to(torch.uint8)
        else:
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

    @property
    def row_scales(self) -> torch.Tensor | None:
        """Per vocabulary row, multiplies the max (tokens-packed layout); None when the kernel applied it."""
        return self.scales if self.tokens_packed else None

    def buffer_dtype(self) -> None:
        return None  # qlinear_pointwise returns its own fp32 output

    @property
    def result_dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def masks_padding(self) -> bool:
        return True  # padded tokens are -inf (fused with the per-token rescaling) or copies of a real token

    def rows_per_tile(self, tiling: Tiling) -> int:
        """The tiling's rows (tokens-packed layout), else the packed slice size nearest them (rounding down)."""
        if self.tokens_packed:
            return tiling.rows
        fitting = [rows for rows in PACKED_SLICE_ROWS if rows <= tiling.rows]
        return max(fitting) if fitting else min(PACKED_SLICE_ROWS)

    def prepare(self, hidden: torch.Tensor, mask: torch.Tensor) -> QuantizedBatch | PackedTokens:
        batch, length, width = hidden.shape
        flat = hidden.reshape(batch * length, width).to(torch.float32)
        if self.tokens_packed:
            positions = torch.arange(length, device=hidden.device)
            present = mask.bool()
            first_real = present.to(torch.int8).argmax(dim=1, keepdim=True)
            source = torch.where(present, positions, first_real) + length * torch.arange(batch, device=hidden.device)[:, None]
            flat = flat[source.reshape(-1)]  # a padded token becomes a copy of its document's first token
            scales = flat.abs().amax(dim=1).clamp_min_(torch.finfo(torch.float32).tiny).div_(127.0)
            values = torch.round(flat / scales[:, None]).clamp_(-127, 127).to(torch.int8)
            zeros = torch.zeros(batch * length, dtype=torch.int32, device=hidden.device)
            return PackedTokens(values, scales, zeros, {})
        half = self.levels // 2
        token_scales = flat.abs().amax(dim=1, keepdim=True).clamp_min_(torch.finfo(torch.float32).tiny) / half
        quantized = torch.round(flat / token_scales).add_(half).clamp_(0, 2 * half).to(torch.uint8)
        padding = torch.zeros(batch * length, 1, dtype=torch.float32, device=hidden.device)
        padding.masked_fill_(~mask.reshape(batch * length, 1).bool(), float("-inf"))
        return QuantizedBatch(quantized, token_scales, padding, half)

    def tile_logits(
        self, prepared: QuantizedBatch | PackedTokens, start: int, rows: int, first_doc: int, docs: int, length: int, buffer: torch.Tensor
    ) -> torch.Tensor:
        stop = min(self._vocab, start + rows)
        first, count = first_doc * length, docs * length
        if isinstance(prepared, PackedTokens):
            packed = prepared.packed.get((first, count))
            if packed is None:
                packed = prepared.packed[(first, count)] = torch.ops.onednn.qlinear_prepack(prepared.values[first : first + count], None)
            logits: torch.Tensor = torch.ops.onednn.qlinear_pointwise(
                self.vocab_uint8[start:stop], 1.0, 128, packed,
                prepared.token_scales[first : first + count], prepared.zero_points[first : first + count], None,
                1.0, 0, torch.float32, "none", [], "",
            )
            return logits.view(stop - start, docs, length)
        if rows not in self._packed or start % rows:
            raise ValueError(f"vocabulary tile {start}+{rows} is not one of the packed slices {PACKED_SLICE_ROWS}")
        tokens = slice(first, first + count)
        logits = torch.ops.onednn.qlinear_pointwise(
            prepared.values[tokens], 1.0, prepared.zero_point, self._packed[rows][start // rows],
            self.scales[start:stop], self._zero_points[start:stop], None,
            1.0, 0, torch.float32, "none", [], "",
        )
        torch.addcmul(prepared.padding[tokens], logits, prepared.token_scales[tokens], out=logits)  # scale back, mask: one pass
        return logits.view(docs, length, stop - start).permute(2, 0, 1)


assert all(rows % SLICE_ALIGN == 0 for rows in PACKED_SLICE_ROWS)


# ---- the transformer body ---------------------------------------------------------------------------------------
DYNAMIC_ENGINE = "onednn"  # the dynamic int8 linear's packed weights; faster than fbgemm/x86 on the CPUs measured


def dynamic_int8_available() -> bool:
    """True when PyTorch ships the dynamic int8 linear kernel with oneDNN weights (x86 CPU builds)."""
    try:
        return (
            DYNAMIC_ENGINE in torch.backends.quantized.supported_engines
            and hasattr(torch, "quantize_per_channel")
            and hasattr(torch.ops.quantized, "linear_dynamic")
        )
    except (AttributeError, RuntimeError):
        return False


@contextlib.contextmanager
def _quantized_engine(name: str) -> Iterator[None]:
    """Pack weights for `name` without leaving PyTorch's process-wide engine changed."""
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


class Int8Linear(nn.Module):
    """`nn.Linear` with int8 weights (one scale per output row) and per-token int8 activations, fp32 in and out."""

    def __init__(self, linear: nn.Linear, *, features: CpuFeatures | None = None, per_token: bool = True) -> None:
        super().__init__()
        if linear.weight.device.type != "cpu":
            raise ValueError(f"int8 layers run on CPU; the weight is on {linear.weight.device}")
        if not dynamic_int8_available():
            raise Int8Unavailable("this PyTorch build has no dynamic int8 linear kernel (torch.ops.quantized.linear_dynamic with oneDNN)")
        weight = linear.weight.detach().to(torch.float32)
        self.in_features, self.out_features = int(weight.shape[1]), int(weight.shape[0])
        scales = (weight.abs().amax(dim=1) / 127.0).clamp_min(torch.finfo(torch.float32).tiny).to(torch.float64)
        zero_points = torch.zeros(self.out_features, dtype=torch.long)
        with warnings.catch_warnings():  # the quantized-tensor constructors warn of deprecation; the packed kernel is
            warnings.simplefilter("ignore", UserWarning)  # what runs, checked by `dynamic_int8_available`
            quantized = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
        bias = None if linear.bias is None else linear.bias.detach().to(torch.float32).clone()
        self.per_token = per_token
        with _quantized_engine(DYNAMIC_ENGINE):  # per tensor: the kernel adds the bias (one pass less)
            self._packed = torch.ops.quantized.linear_prepack(quantized, None if per_token else bias)
        self.register_buffer("bias", bias if per_token else None)
        self.reduce_range = not (features or cpu_features()).vnni

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, self.in_features).to(torch.float32)
        if not self.per_token:  # one scale per tensor: the kernel quantises, multiplies and adds the bias
            return torch.ops.quantized.linear_dynamic(flat, self._packed, self.reduce_range).view(*shape[:-1], self.out_features)  # type: ignore[no-any-return]
        token_scales = flat.abs().amax(dim=1, keepdim=True).clamp_min_(torch.finfo(torch.float32).tiny)
        out = torch.ops.quantized.linear_dynamic(flat / token_scales, self._packed, self.reduce_range)
        out = out.mul_(token_scales) if self.bias is None else torch.addcmul(self.bias, out, token_scales)  # type: ignore[arg-type]  # bias is a registered buffer (a Tensor)
        return out.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        scales = "per token" if self.per_token else "per tensor"
        return f"in_features={self.in_features}, out_features={self.out_features}, int8, activations {scales}, reduce_range={self.reduce_range}"


def quantize_linears(module: nn.Module, *, skip: nn.Module | None = None, features: CpuFeatures | None = None, per_token: bool = True) -> int:
    """Replace every `nn.Linear` under `module` (but `skip`, e.g. the vocabulary projection) by an `Int8Linear`,
    in place (activations scaled per token, or per tensor); returns how many were replaced."""
    replaced = 0
    for name, child in list(module.named_children()):
        if child is skip:
            continue
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child, features=features, per_token=per_token))
            replaced += 1
        else:
            replaced += quantize_linears(child, skip=skip, features=features, per_token=per_token)
    return replaced

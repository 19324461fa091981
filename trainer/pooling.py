"""SPLADE pooling over the vocabulary projection without the (batch, length, vocab) tensor.

max_t(h_t · w_v) is computed one vocabulary slice at a time. For training, a custom autograd function
keeps only the winning token per (row, vocabulary entry): the gradient of a max flows to that token
alone, and only through entries that are active after log1p(relu) (a few hundred of 30,522), so the
backward pass is a handful of small gathers instead of a second (batch, length, vocab) GEMM.

For inference (`pool_max`, `pool_sum`), one code path serves CPU and CUDA. The logits are computed in
tiles of (vocabulary rows) x (whole documents of the padded batch): one GEMM per tile, written into a
buffer allocated once per call, padding masked in place, then one max-over-tokens reduction per tile.
No Python loop over rows, no host synchronisation, no allocation per tile. The tile shape is the only
device-specific choice (`tiling_for`): on CPU a few MB, both GEMM dimensions >= 256 so that packing the
operands is amortised (a 32-row slice against 16k tokens spent most of its time re-packing the tokens);
on CUDA the whole batch against large vocabulary slices, in a few launches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

VOCAB_SLICE = 4096  # vocabulary rows per GEMM on one text: keeps the (slice, length) logits in cache


def sequence_max(states: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(length, H) states -> max over tokens of states @ weight.T and the winning token, both (vocab,)."""
    vocab = weight.shape[0]
    values = torch.empty(vocab, dtype=states.dtype, device=states.device)
    winners = torch.zeros(vocab, dtype=torch.long, device=states.device)
    if states.shape[0] == 0:
        return values.fill_(float("-inf")), winners
    columns = states.t().contiguous()
    for start in range(0, vocab, VOCAB_SLICE):
        stop = start + VOCAB_SLICE
        torch.max(weight[start:stop] @ columns, dim=1, out=(values[start:stop], winners[start:stop]))
    return values, winners


def compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    """The dtype an autocast region would run a matrix product of `tensor` in: its low-precision dtype for fp32
    (or already low-precision) inputs while autocast is on for the tensor's device, else the tensor's own dtype."""
    device = tensor.device.type
    if torch.is_autocast_enabled(device) and tensor.dtype in (torch.float32, torch.bfloat16, torch.float16):
        return torch.get_autocast_dtype(device)
    return tensor.dtype


class _MaxOverTokens(torch.autograd.Function):
    """max_t(hidden[b, t] · weight[v]) over real tokens, with a sparse backward through the winners.

    Under autocast (mixed-precision training, CPU or CUDA) the logits' GEMMs run in the autocast dtype, as an
    nn.Linear would, and the max is returned in it; the backward computes in fp32 (or fp64) and returns gradients
    in the inputs' own dtypes, so fp32 master weights get fp32 gradients.
    """

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        dtype = compute_dtype(hidden)
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            states = hidden.to(dtype)
            weight_c = weight.to(dtype)  # one cast per call, not one per vocabulary slice and row
            values, winners = [], []
            for row in range(states.shape[0]):
                positions = torch.nonzero(mask[row], as_tuple=True)[0]
                v, w = sequence_max(states[row, positions], weight_c)
                values.append(v)
                winners.append(positions[w] if positions.numel() else w)
        winner = torch.stack(winners)
        ctx.save_for_backward(hidden, weight, winner)
        return torch.stack(values)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, torch.Tensor | None]:
        hidden, weight, winner = ctx.saved_tensors
        grad_hidden = torch.zeros_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(weight) if ctx.needs_input_grad[2] else None
        accumulate = torch.promote_types(torch.promote_types(grad.dtype, weight.dtype), torch.float32)  # fp32 or fp64
        for row in range(grad.shape[0]):
            active = torch.nonzero(grad[row], as_tuple=True)[0]
            if active.numel() == 0:
                continue
            g = grad[row, active].to(accumulate).unsqueeze(1)
            tokens = winner[row, active]
            if grad_hidden is not None:
                grad_hidden[row].index_add_(0, tokens, (g * weight[active].to(accumulate)).to(hidden.dtype))
            if grad_weight is not None:
                grad_weight.index_add_(0, active, (g * hidden[row, tokens].to(accumulate)).to(weight.dtype))
        return grad_hidden, None, grad_weight


def max_over_tokens(hidden: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Differentiable (batch, vocab) max over real tokens of hidden @ weight.T (no bias)."""
    return _MaxOverTokens.apply(hidden, mask.bool(), weight)  # type: ignore[no-any-return]  # autograd.Function.apply returns Any


# ---- inference ------------------------------------------------------------------------------------------

CPU_TILE_ELEMENTS = 1 << 21  # logits per tile on CPU (8 MB in fp32): large GEMMs, little memory traffic
CPU_TILE_TOKENS = 2048  # tokens per tile on CPU (whole documents); the rest of the tile is vocabulary rows
CUDA_TILE_ELEMENTS = 1 << 27  # logits per tile on CUDA (256 MB in bf16): the whole batch, a few launches
MIN_TILE_ROWS = 256  # fewer vocabulary rows per GEMM and the token operand's packing dominates
SLICE_ALIGN = 32  # vocabulary rows per tile are a multiple of this: whole AMX / AVX-512 / tensor-core tiles


CPU_FORWARD_TOKENS = 1024  # padded tokens per transformer forward on CPU (whole documents); see `forward_chunks`


def forward_chunks(mask: torch.Tensor, *, max_tokens: int | None = None) -> list[tuple[int, int, int]]:
    """Consecutive document groups (first, stop, length) of a right-padded batch, each run through the model alone.

    On CPU a batch is cut into groups of at most `CPU_FORWARD_TOKENS` padded tokens (at least one document), each
    trimmed to its own longest document. The encoder's batch size is the user's; this is how the CPU computes it:
    at DistilBERT size a 32 x 256 batch moves 100 MB activations per layer (8192 x 3072 fp32), which leave the
    cache and are re-faulted from the OS on every allocation (glibc maps blocks above 32 MB afresh); groups of
    1,024 tokens stay in cache and in the heap (measured: int8-full 5.1 -> 8.1 CPU docs/s on an AVX512-VNNI EPYC,
    fp32 and bf16 5-15% faster). On CUDA the whole batch is one group (its kernels want large batches).
    """
    batch, width = mask.shape
    if mask.device.type == "cuda" or batch <= 1:
        return [(0, batch, width)]
    limit = max_tokens or CPU_FORWARD_TOKENS
    present = mask.bool()
    # length of a row = 1 + its last real token (right padding); 0 for an empty row
    positions = torch.arange(1, width + 1, device=mask.device)
    lengths = (present * positions).amax(dim=1).tolist()
    groups: list[tuple[int, int, int]] = []
    first, longest = 0, 0
    for row, length in enumerate(lengths):
        wider = max(longest, int(length))
        if row > first and wider * (row + 1 - first) > limit:
            groups.append((first, row, max(1, longest)))
            first, wider = row, int(length)
        longest = wider
    groups.append((first, batch, max(1, longest)))
    return groups


@dataclass(frozen=True)
class Tiling:
    """How the (vocabulary x tokens) logits are cut: whole documents per tile, and vocabulary rows per tile."""

    docs: int
    rows: int


def tiling_for(
    device: torch.device, batch: int, length: int, vocab: int, *, tile_elements: int | None = None, tile_tokens: int | None = None
) -> Tiling:
    """The tile shape for a padded (batch, length) batch on `device` (the only device-specific choice)."""
    cuda = device.type == "cuda"
    elements = tile_elements or (CUDA_TILE_ELEMENTS if cuda else CPU_TILE_ELEMENTS)
    token_cap = tile_tokens or (None if cuda else CPU_TILE_TOKENS)
    docs = batch if token_cap is None else max(1, min(batch, token_cap // max(1, length)))
    return Tiling(docs=docs, rows=slice_rows(docs * length, vocab, elements))


def slice_rows(tokens: int, vocab: int, tile_elements: int) -> int:
    """Vocabulary rows per tile: about `tile_elements` / `tokens`, aligned, at least `MIN_TILE_ROWS`."""
    rows = max(MIN_TILE_ROWS, tile_elements // max(1, tokens)) // SLICE_ALIGN * SLICE_ALIGN
    return min(vocab, rows)


class VocabProjection(Protocol):
    """The vocabulary projection prepared for inference: logits of one tile for a batch."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def bias(self) -> torch.Tensor | None:
        """fp32 (vocab,) bias, added after the max (it is constant over tokens), or None."""

    def buffer_dtype(self) -> torch.dtype | None:
        """dtype of the logits buffer; None: the kernel returns fp32 logits of its own (no shared buffer)."""

    @property
    def result_dtype(self) -> torch.dtype:
        """The precision of the logits (the max is rounded to it before the fp32 bias and activation)."""

    @property
    def masks_padding(self) -> bool:
        """True when padded tokens of `tile_logits` cannot win the max: -inf (fused with the kernel's epilogue) or
        copies of a real token of their document."""

    @property
    def row_scales(self) -> torch.Tensor | None:
        """fp32 (vocab,) positive factors of the logits applied after the max (they commute with it), or None."""

    def rows_per_tile(self, tiling: Tiling) -> int:
        """Vocabulary rows per tile (the tiling's, or the nearest size the kernel was prepared for)."""

    def prepare(self, hidden: torch.Tensor, mask: torch.Tensor) -> Any:
        """Per-batch operand from (batch, length, H) states: a layout change, or quantised activations."""

    def tile_logits(self, prepared: Any, start: int, rows: int, first_doc: int, docs: int, length: int, buffer: torch.Tensor) -> torch.Tensor:
        """Logits of vocabulary rows start:start+rows (clipped to the vocabulary) for documents
        first_doc:first_doc+docs, as (rows, docs, length); written into `buffer` when the kernel can."""


class DenseProjection:
    """hidden @ weight.T in the weight's dtype (fp32, bf16 or fp16), accumulated in fp32 by the GEMM.

    In bf16/fp16 the product rounds each logit once; rounding is monotone, so the max over tokens is the
    exact max of the rounded logits. The bias (kept in fp32) and the activation are applied after the max, in fp32.

    `fp32_kernels=True` (for bf16/fp16 weights on a CPU without native bf16/fp16 products, where PyTorch's
    fallback GEMM was measured 30x slower than fp32): the same numbers from fp32 GEMMs. bf16 x bf16 products
    are exact in fp32, so an fp32 GEMM of the bf16 values accumulates what a native bf16 GEMM accumulates (up
    to summation order); the max is then rounded to bf16, which equals the max of rounded logits.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, *, fp32_kernels: bool = False) -> None:
        self._result_dtype = weight.dtype
        self.weight = weight.detach()
        if fp32_kernels and weight.dtype in (torch.bfloat16, torch.float16):
            self.weight = self.weight.to(torch.float32)
        if not self.weight.is_contiguous():
            self.weight = self.weight.contiguous()
        self._bias = None if bias is None else bias.detach().to(torch.float32)

    @property
    def result_dtype(self) -> torch.dtype:
        return self._result_dtype

    @property
    def vocab_size(self) -> int:
        return int(self.weight.shape[0])

    @property
    def bias(self) -> torch.Tensor | None:
        return self._bias

    def buffer_dtype(self) -> torch.dtype:
        return self.weight.dtype

    @property
    def masks_padding(self) -> bool:
        return False

    @property
    def row_scales(self) -> None:
        return None

    def rows_per_tile(self, tiling: Tiling) -> int:
        return tiling.rows

    def prepare(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, width = hidden.shape
        return hidden.to(self.weight.dtype).reshape(batch * length, width).t().contiguous()  # (H, tokens)

    def tile_logits(self, prepared: torch.Tensor, start: int, rows: int, first_doc: int, docs: int, length: int, buffer: torch.Tensor) -> torch.Tensor:
        stop = min(self.vocab_size, start + rows)
        tokens = docs * length
        out = buffer[: (stop - start) * tokens].view(stop - start, tokens)
        torch.mm(self.weight[start:stop], prepared[:, first_doc * length : first_doc * length + tokens], out=out)
        return out.view(stop - start, docs, length)


def _tiles(
    projection: VocabProjection, hidden: torch.Tensor, mask: torch.Tensor, tile_elements: int | None
) -> tuple[Any, torch.Tensor, Tiling]:
    """The prepared operand, the logits buffer (allocated once per call, reused by every tile), the tiling."""
    batch, length, _ = hidden.shape
    tiling = tiling_for(hidden.device, batch, length, projection.vocab_size, tile_elements=tile_elements)
    tiling = Tiling(docs=tiling.docs, rows=projection.rows_per_tile(tiling))
    dtype = projection.buffer_dtype()
    size = tiling.rows * tiling.docs * length if dtype is not None else 0
    buffer = torch.empty(size, dtype=dtype or torch.float32, device=hidden.device)
    return projection.prepare(hidden, mask), buffer, tiling


def pool_max(projection: VocabProjection, hidden: torch.Tensor, mask: torch.Tensor, tile_elements: int | None = None) -> torch.Tensor:
    """(batch, vocab) fp32 max over real tokens of the logits, plus bias; -inf (+ bias) for a row without tokens."""
    batch, length, _ = hidden.shape
    vocab = projection.vocab_size
    prepared, buffer, tiling = _tiles(projection, hidden, mask, tile_elements)
    padding = ~mask.bool().reshape(1, batch, length)
    out = torch.empty(vocab, batch, dtype=buffer.dtype, device=hidden.device)
    for first in range(0, batch, tiling.docs):
        docs = min(tiling.docs, batch - first)
        for start in range(0, vocab, tiling.rows):
            logits = projection.tile_logits(prepared, start, tiling.rows, first, docs, length, buffer)
            if not projection.masks_padding:
                logits.masked_fill_(padding[:, first : first + docs], float("-inf"))
            _max_over_tokens(logits, out[start : start + logits.shape[0], first : first + docs])
    if projection.row_scales is not None:
        out.mul_(projection.row_scales[:, None])
    if projection.masks_padding:  # a row without tokens: -inf, as the masked path gives (no host sync)
        out.masked_fill_(~mask.bool().any(dim=1)[None, :], float("-inf"))
    raw = out.t().contiguous().to(projection.result_dtype).float()
    bias = projection.bias
    return raw if bias is None else raw + bias


def _max_over_tokens(logits: torch.Tensor, out: torch.Tensor) -> None:
    """(rows, docs, length) -> (rows, docs) max, reducing along whichever axis is contiguous in memory."""
    if logits.stride(2) == 1:
        torch.amax(logits, dim=2, out=out)
    else:  # tokens-major logits (tokens x rows kernels): reduce across token rows, vectorised along the vocabulary
        out.copy_(logits.permute(1, 2, 0).amax(dim=1).t())


def pool_sum(
    projection: VocabProjection, hidden: torch.Tensor, mask: torch.Tensor, activation: Any, tile_elements: int | None = None
) -> torch.Tensor:
    """(batch, vocab) fp32 sum over real tokens of activation(logits + bias): every token is activated."""
    batch, length, _ = hidden.shape
    vocab = projection.vocab_size
    prepared, buffer, tiling = _tiles(projection, hidden, mask, tile_elements)
    weights = mask.to(torch.float32).reshape(1, batch, length)
    bias = projection.bias
    out = torch.empty(vocab, batch, dtype=torch.float32, device=hidden.device)
    for first in range(0, batch, tiling.docs):
        docs = min(tiling.docs, batch - first)
        for start in range(0, vocab, tiling.rows):
            logits = projection.tile_logits(prepared, start, tiling.rows, first, docs, length, buffer).to(projection.result_dtype).float()
            stop = start + logits.shape[0]
            if projection.row_scales is not None:
                logits = logits * projection.row_scales[start:stop, None, None]
            if bias is not None:
                logits = logits + bias[start:stop, None, None]
            torch.sum(activation(logits) * weights[:, first : first + docs], dim=2, out=out[start:stop, first : first + docs])
    return out.t().contiguous()

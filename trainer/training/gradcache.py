"""GradCache: full-batch contrastive loss with the activations of only one mini-batch held at once.

(1) embed every column in mini-batches without grad, saving the RNG state before each mini-batch;
(2) compute the loss on the full-batch embeddings and backprop it to the embeddings only;
(3) re-embed each mini-batch with grad, replaying its saved RNG state (same dropout masks), and
backprop the cached embedding gradients into the model. Gradients equal the plain full-batch ones.
Ref: Gao et al. 2021, https://arxiv.org/abs/2101.06983.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from trainer.training.losses import LossParts

Features = dict[str, torch.Tensor]
EmbedFn = Callable[[Features], torch.Tensor]
LossFn = Callable[[torch.Tensor, Sequence[torch.Tensor]], LossParts]


@dataclass
class RngState:
    """CPU and CUDA generator states captured before a forward pass, for replaying it."""

    cpu: torch.Tensor
    cuda_devices: list[int]
    cuda: list[torch.Tensor]

    @classmethod
    def capture(cls, device: torch.device) -> RngState:
        devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
        return cls(torch.get_rng_state(), devices, [torch.cuda.get_rng_state(d) for d in devices])

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        """Run the body with the captured states; the outer RNG streams are restored afterwards."""
        with torch.random.fork_rng(devices=self.cuda_devices, enabled=True):
            torch.set_rng_state(self.cpu)
            for device, state in zip(self.cuda_devices, self.cuda):
                torch.cuda.set_rng_state(state, device)
            yield


def full_precision(embeddings: torch.Tensor) -> torch.Tensor:
    """Half-precision (autocast) embeddings as fp32 for the loss; fp32/fp64 pass through."""
    return embeddings.float() if embeddings.dtype in (torch.float16, torch.bfloat16) else embeddings


def split_features(features: Features, size: int) -> list[Features]:
    """Row slices of at most `size`, each trimmed to its own longest sequence (less padding)."""
    total = next(iter(features.values())).shape[0]
    chunks = []
    for start in range(0, total, size):
        chunk = {k: v[start : start + size] for k, v in features.items()}
        if "attention_mask" in chunk:
            length = int(chunk["attention_mask"].sum(dim=1).max())
            chunk = {k: (v[:, :length] if v.dim() == 2 else v) for k, v in chunk.items()}
        chunks.append(chunk)
    return chunks


def cached_backward(
    embed: EmbedFn | Sequence[EmbedFn],
    columns: Sequence[Features],
    loss_fn: LossFn,
    mini_batch_size: int,
    *,
    device: torch.device,
    grad_scale: float = 1.0,
) -> tuple[LossParts, list[torch.Tensor]]:
    """Accumulate into the model's `.grad` the gradient of `grad_scale * loss_fn(...).total`.

    `columns[0]` are queries, the rest documents (positives, then hard negatives). `embed` is one function
    for every column, or one per column (an inference-free model embeds queries differently). Returns the
    loss parts (detached) and the detached full-batch embeddings (for logging active dimensions).
    """
    embeds = [embed] * len(columns) if callable(embed) else list(embed)
    if len(embeds) != len(columns):
        raise ValueError(f"{len(embeds)} embed functions for {len(columns)} columns")
    chunks = [split_features(column, mini_batch_size) for column in columns]
    states: list[list[RngState]] = []
    reps: list[torch.Tensor] = []
    for column_chunks, column_embed in zip(chunks, embeds):
        column_states, column_reps = [], []
        for chunk in column_chunks:
            column_states.append(RngState.capture(device))
            with torch.no_grad():
                column_reps.append(full_precision(column_embed(chunk)))
        states.append(column_states)
        reps.append(torch.cat(column_reps).requires_grad_())

    with torch.enable_grad():
        parts = loss_fn(reps[0], reps[1:])
        (parts.total * grad_scale).backward()
    grads = [r.grad for r in reps]
    detached = LossParts(parts.base.detach(), parts.document_regularizer.detach(), parts.query_regularizer.detach())

    for column_chunks, column_states, grad, column_embed in zip(chunks, states, grads, embeds):
        assert grad is not None
        offset = 0
        for chunk, state in zip(column_chunks, column_states):
            with state.replay():
                emb = full_precision(column_embed(chunk))
            rows = emb.shape[0]
            emb.backward(gradient=grad[offset : offset + rows])
            offset += rows
    return detached, [r.detach() for r in reps]

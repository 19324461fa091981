"""No-duplicates batch sampler: no text appears twice in a batch, across all columns.

A duplicate (e.g. the same passage as positive of two queries, or one query's negative being
another's positive) would be a false in-batch negative. Order is a pure function of (seed, epoch),
so the state (epoch, position) is enough to resume exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class SamplerState:
    """Where the sampler is: `position` batches of epoch `epoch` have been handed out."""

    epoch: int = 0
    position: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class NoDuplicatesBatchSampler:
    """Shuffled batches of row indices with no repeated text; rows that clash wait for a later batch.

    With `drop_last` (default) a trailing batch that cannot be filled is dropped, so every batch has
    exactly `batch_size` rows (a steady number of in-batch negatives).
    """

    def __init__(self, rows: Sequence[Sequence[str]], batch_size: int, *, seed: int = 0, drop_last: bool = True) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.rows = rows
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.state = SamplerState()
        self._cache: dict[int, list[list[int]]] = {}

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All batches of an epoch (deterministic, memoised for the current epoch)."""
        if epoch not in self._cache:
            self._cache = {epoch: self._build(epoch)}
        return self._cache[epoch]

    def _build(self, epoch: int) -> list[list[int]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.rows)).tolist()
        # a row repeating a text within itself can never be batched safely: leave it out
        remaining = dict.fromkeys(i for i in order if len(set(self.rows[i])) == len(self.rows[i]))
        batches: list[list[int]] = []
        while remaining:
            batch: list[int] = []
            seen: set[str] = set()
            for index in remaining:
                texts = self.rows[index]
                if not seen.isdisjoint(texts):
                    continue
                batch.append(index)
                seen.update(texts)
                if len(batch) == self.batch_size:
                    break
            if len(batch) == self.batch_size or not self.drop_last:
                batches.append(batch)
            for index in batch:
                del remaining[index]
        return batches

    def __len__(self) -> int:
        return len(self.epoch_batches(self.state.epoch))

    def __iter__(self) -> Iterator[list[int]]:
        """Batches from the current state onwards, to the end of the epoch; advances the state."""
        batches = self.epoch_batches(self.state.epoch)
        while self.state.position < len(batches):
            batch = batches[self.state.position]
            self.state.position += 1
            yield batch
        self.state = SamplerState(self.state.epoch + 1, 0)

    def state_dict(self) -> dict[str, int]:
        return self.state.as_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.state = SamplerState(int(state["epoch"]), int(state["position"]))

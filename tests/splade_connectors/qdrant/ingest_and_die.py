"""A process that ingests a JSONL corpus into the embedded engine and SIGKILLs itself mid-run.

    python -m tests.splade_connectors.qdrant.ingest_and_die CORPUS PATH COLLECTION CHECKPOINT BATCH DIE_AFTER

Used by the durability test: the kill comes right after batch `DIE_AFTER` was acknowledged and
checkpointed (0 = never die). `HashEncoder` gives every text a fixed sparse vector without a model,
so the test process can resume the same ingestion and know which vectors must be stored.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from collections.abc import Sequence

import numpy as np

from splade_connectors.ingest import IngestConfig, ingest_file
from splade_connectors.qdrant import QdrantConfig, QdrantStore
from trainer.encoder import EncodeStats
from trainer.identity import EncoderIdentity
from trainer.sparse import SparseVector


class HashEncoder:
    """Deterministic SPLADE-like vectors from the words of a text (ids < 30522, weights in (0, 3])."""

    def __init__(self) -> None:
        self.stats = EncodeStats()

    def encode_documents(self, texts: Sequence[str], **_: object) -> list[SparseVector]:
        self.stats = EncodeStats(texts=len(texts))
        return [self.vector(t) for t in texts]

    def identity(self) -> EncoderIdentity:
        """Fixed: the vectors depend on the text only (what makes a checkpointed run resumable)."""
        return EncoderIdentity(model="test-hash-encoder:v1")

    @staticmethod
    def vector(text: str) -> SparseVector:
        weights: dict[int, float] = {}
        for word in text.lower().split()[:200]:
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % 30522
            weights[index] = max(weights.get(index, 0.0), 0.1 + (digest[4] / 255) * 2.9)
        if not weights:
            return SparseVector.empty()
        indices = np.array(sorted(weights), dtype=np.int64)
        return SparseVector(indices, np.array([weights[i] for i in indices], dtype=np.float32))


def run(corpus: str, path: str, collection: str, checkpoint: str, batch: int, die_after: int) -> int:
    done = [0]

    def maybe_die(_: int) -> None:
        done[0] += 1
        if die_after and done[0] == die_after:
            os.kill(os.getpid(), signal.SIGKILL)

    with QdrantStore(QdrantConfig(path=path, collection=collection)) as store:
        report = ingest_file(corpus, HashEncoder(), store, IngestConfig(batch_size=batch, checkpoint=checkpoint), progress=maybe_die)
    return 0 if report.accepted else 1


if __name__ == "__main__":
    corpus, path, collection, checkpoint, batch, die_after = sys.argv[1:7]
    sys.exit(run(corpus, path, collection, checkpoint, int(batch), int(die_after)))

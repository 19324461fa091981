"""The sparse query every Qdrant search sends: exact, or two-phase (`splade_connectors.two_phase`).

Two-phase in Qdrant's Query API: a `prefetch` of the top `window` points by the query's head terms
(with the search's filter), then the main query with the full sparse vector over those candidates.
Qdrant scores the main query on the stored vectors of the prefetched points, so every returned score
is the exact dot product (IDF-weighted on an IDF collection), the same number the exact query gives.
Phase one keeps every positive-scoring candidate (no score threshold: a head score is only part of the
full score); the search's threshold applies to the full score. Both phases run in one request, so
batches stay one round trip.
"""

from __future__ import annotations

from qdrant_client import models

from splade_connectors.qdrant.engine import NearestQuery
from splade_connectors.two_phase import TwoPhase
from trainer.sparse import SparseVector

# Floor for sparse scores: positive, representable in float32, below any real SPLADE score.
# Makes local mode drop zero-score points the way the engine never returns them.
MIN_SCORE = 1e-30


def sparse_query(
    using: str,
    vector: SparseVector,
    *,
    limit: int,
    filter: models.Filter | None = None,
    score_threshold: float | None = MIN_SCORE,
    two_phase: TwoPhase | None = None,
) -> NearestQuery:
    """Top-`limit` points by the sparse dot product; two-phase when `two_phase` leaves some terms out of phase one."""
    if two_phase is not None:
        head, tail = two_phase.split(vector)
        if tail.nnz:
            candidates = NearestQuery(
                using=using, limit=two_phase.window(limit), sparse=head, filter=filter, score_threshold=MIN_SCORE, payload=False
            )
            return NearestQuery(using=using, limit=limit, sparse=vector, score_threshold=score_threshold, candidates=candidates)
    return NearestQuery(using=using, limit=limit, sparse=vector, filter=filter, score_threshold=score_threshold)

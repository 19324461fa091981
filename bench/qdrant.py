"""Benchmark: a million SPLADE vectors into the real Qdrant server, and query latency on every engine.

    python bench/qdrant.py all --sizes 100000,1000000 --out bench-qdrant.json     # the definitive run (quiet machine)
    python bench/qdrant.py all --sizes 2000 --local-points 500 --queries 40       # smoke run, a minute
    python bench/qdrant.py two-phase --points 1000000 --out bench-qdrant-two-phase.json   # two-phase vs exact

Documents: pre-encoded SPLADE vectors with realistic sparsity, resampled from real documents
(SciFact, 5,183, and the MS MARCO DL19 subset, 5,000) encoded once with the shipped model and cached
under ~/.cache/splade-connectors/bench/. Each synthetic document starts from a random real one, drops
20% of its terms, replaces them with terms drawn from the corpus' term distribution (so document
frequencies stay Zipf-like) and jitters every weight (log-normal, sigma 0.15); the result is
deterministic per (seed, position), so both ingestion sides send the very same points.
Queries: the 343 real encoded test queries of those datasets.

Phases, each in its own subprocess (so peak RSS is that phase's own):
1. ingestion into the server (started from the native binary, or --url): our pipeline (`ingest()` with
   a replaying encoder, through `QdrantStore`) vs qdrant-client `upload_points(..., parallel=P)` of the
   same points, both waiting until every point is stored; points/s, ratio, and our peak RSS at each size;
2. query latency p50/p99, single queries and batches of 32, through `QdrantStore.search_batch` on the
   server and on the embedded engine (ingested via the store, then flushed and optimized), against exact
   in-memory scoring (scipy CSC inverted index); and qdrant-client local mode at --local-points.

`two-phase`: our pipeline ingests --points into the server; then on the server and on the embedded engine,
the exact query and each two-phase spec (`--specs`, `splade_connectors.two_phase`): p50/p99 single and
batched, recall@10 against the exact query on the same engine, and the load average around the queries.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from splade_connectors.live.qdrant_server import QdrantServer, cache_root  # noqa: E402 - after the sys.path insert
from trainer.sparse import SparseVector  # noqa: E402 - after the sys.path insert

logger = logging.getLogger("bench.qdrant")

VOCAB = 30522
CHUNK = 8192
SPARSE_NAME = "splade"
DATASETS = ("scifact", "msmarco-dl19-subset")
TWO_PHASE_SPECS = ("ratio=0.3,expansion=3", "ratio=0.3,expansion=5", "ratio=0.4,expansion=3", "ratio=0.4,expansion=5",
                   "ratio=0.5,expansion=10", "ratio=0.3,expansion=10", "ratio=0.2,expansion=10", "ratio=0.5,expansion=20")
ENCODING_VERSION = "1"  # part of the encoded-dataset cache key: bump when the encoder's output changes


# ---------------------------------------------------------------- base vectors (real, encoded once)


def encoded_cache_file(folder: Path, model_dir: Path) -> Path:
    """The cache of a BEIR dataset encoded with a model (the same file the tests' `scifact_full` fixture uses):
    keyed by the data and the model files only (not the encoder's source, which changes with every unrelated
    edit; bump ENCODING_VERSION when a change alters the vectors)."""
    import hashlib

    digest = hashlib.sha256(ENCODING_VERSION.encode())
    model_files = sorted(p for p in model_dir.iterdir() if p.is_file())
    for path in [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / "test.tsv", *model_files]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return cache_root() / "bench" / f"encoded-{folder.name}-{digest.hexdigest()[:20]}.npz"


def _beir_texts(folder: Path) -> tuple[list[str], list[str], list[str], list[str]]:
    """(doc ids, doc texts: title + newline + text, judged test query ids, their texts)."""
    doc_ids, docs = [], []
    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            doc_ids.append(row["_id"])
            docs.append(f"{row['title']}\n{row['text']}" if row.get("title") else row["text"])
    with open(folder / "qrels" / "test.tsv", encoding="utf-8") as handle:
        next(handle)
        judged = {line.split("\t")[0] for line in handle}
    query_ids, queries = [], []
    with open(folder / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["_id"] in judged:
                query_ids.append(row["_id"])
                queries.append(row["text"])
    return doc_ids, docs, query_ids, queries


class Base:
    """Real encoded documents (CSR arrays) and queries."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, queries: list[SparseVector]) -> None:
        self.indptr, self.indices, self.values, self.queries = indptr, indices, values, queries

    @property
    def docs(self) -> int:
        return len(self.indptr) - 1


def encoded_dataset(folder: Path) -> tuple[Any, Any]:
    """(documents CSR, queries CSR) of one dataset, from the cache or encoded now (minutes on 2 cores)."""
    import scipy.sparse

    from trainer.models import shipped_model_dir
    from trainer.sparse import to_csr

    model_dir = shipped_model_dir()
    cache = encoded_cache_file(folder, model_dir)
    doc_ids, docs, query_ids, queries = _beir_texts(folder)
    if not cache.is_file():
        from trainer.encoder import SpladeEncoder

        print(f"encoding {len(docs)} documents and {len(queries)} queries of {folder.name} (cached in {cache})", flush=True)
        encoder = SpladeEncoder.from_pretrained(model_dir, device="cpu")
        doc_matrix = to_csr(encoder.encode_documents(docs), VOCAB)
        query_matrix = to_csr(encoder.encode_queries(queries), VOCAB)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.npz")
        np.savez(
            tmp, doc_ids=np.array(doc_ids), query_ids=np.array(query_ids),
            doc_values=doc_matrix.data, doc_indices=doc_matrix.indices, doc_indptr=doc_matrix.indptr,
            query_values=query_matrix.data, query_indices=query_matrix.indices, query_indptr=query_matrix.indptr,
        )
        os.replace(tmp, cache)
    data = np.load(cache)
    docs_csr = scipy.sparse.csr_matrix((data["doc_values"], data["doc_indices"], data["doc_indptr"]), shape=(len(doc_ids), VOCAB))
    queries_csr = scipy.sparse.csr_matrix((data["query_values"], data["query_indices"], data["query_indptr"]), shape=(len(query_ids), VOCAB))
    return docs_csr, queries_csr


def load_base(data_dir: Path, datasets: Sequence[str] = DATASETS) -> Base:
    """The real encoded base vectors of SciFact and the DL19 subset (or of `datasets`)."""
    import scipy.sparse

    from trainer.sparse import from_csr

    parts = [encoded_dataset(data_dir / name) for name in datasets]
    docs = scipy.sparse.vstack([d for d, _ in parts], format="csr")
    docs.sort_indices()
    queries = [q for _, matrix in parts for q in from_csr(matrix)]
    return Base(docs.indptr.astype(np.int64), docs.indices.astype(np.int64), docs.data.astype(np.float32), queries)


# ---------------------------------------------------------------- synthetic documents


class Synthesizer:
    """Deterministic document vectors resampled from real ones (see the module doc), in chunks of CHUNK."""

    def __init__(self, base: Base, seed: int = 0, drop: float = 0.2, jitter: float = 0.15) -> None:
        self.base, self.seed, self.drop, self.jitter = base, seed, drop, jitter
        self.lengths = np.diff(base.indptr)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def chunk(self, number: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, indices, values) of documents [number * CHUNK, (number + 1) * CHUNK)."""
        if number in self._cache:
            return self._cache[number]
        base, rng = self.base, np.random.default_rng([self.seed, number])
        picks = rng.integers(0, base.docs, size=CHUNK)
        lengths = self.lengths[picks]
        total = int(lengths.sum())
        doc_of = np.repeat(np.arange(CHUNK), lengths)
        offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        gather = base.indptr[picks][doc_of] + offsets
        terms, values = base.indices[gather], base.values[gather]
        keep = rng.random(total) >= self.drop
        dropped_per_doc = np.bincount(doc_of[~keep], minlength=CHUNK)
        new_docs = np.repeat(np.arange(CHUNK), dropped_per_doc)
        new_terms = base.indices[rng.integers(0, len(base.indices), size=len(new_docs))]
        new_values = base.values[rng.integers(0, len(base.values), size=len(new_docs))]
        kept_key = doc_of[keep] * VOCAB + terms[keep]  # already sorted: base rows have sorted terms
        new_key = new_docs * VOCAB + new_terms
        new_order = np.argsort(new_key)
        key = np.concatenate([kept_key, new_key[new_order]])
        values = np.concatenate([values[keep], new_values[new_order]])
        values = values * rng.lognormal(0.0, self.jitter, size=len(key)).astype(np.float32)
        order = np.argsort(key, kind="stable")  # merges the two sorted runs; by (doc, term)
        key, values = key[order], values[order]  # a duplicate term keeps its largest weight
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
        values = np.maximum.reduceat(values, starts).astype(np.float32)
        docs, terms = key[starts] // VOCAB, key[starts] % VOCAB
        indptr = np.zeros(CHUNK + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(np.bincount(docs, minlength=CHUNK))
        if len(self._cache) >= 2:
            self._cache.pop(next(iter(self._cache)))
        self._cache[number] = (indptr, terms, values)
        return self._cache[number]

    def vector(self, position: int) -> SparseVector:
        indptr, terms, values = self.chunk(position // CHUNK)
        row = position % CHUNK
        return SparseVector(terms[indptr[row] : indptr[row + 1]], values[indptr[row] : indptr[row + 1]])

    def csr(self, points: int) -> Any:
        """All `points` documents as one scipy CSR matrix (exact scoring needs them all in memory)."""
        import scipy.sparse

        parts = []
        for number in range(-(-points // CHUNK)):
            indptr, terms, values = self.chunk(number)
            rows = min(CHUNK, points - number * CHUNK)
            parts.append(scipy.sparse.csr_matrix((values[: indptr[rows]], terms[: indptr[rows]], indptr[: rows + 1]), shape=(rows, VOCAB)))
        return scipy.sparse.vstack(parts, format="csr")


def doc_id(position: int) -> str:
    return f"bench-{position:07d}"


def doc_text(position: int) -> str:
    return f"synthetic document {position}"


_TEXT_NUMBER = re.compile(r"(\d+)$")


class ReplayEncoder:
    """Stands in for the SPLADE encoder: the vector of `doc_text(i)` is the synthetic vector i."""

    def __init__(self, synth: Synthesizer) -> None:
        from trainer.encoder import EncodeStats

        self.synth, self.stats, self._stats = synth, EncodeStats(), EncodeStats

    def encode_documents(self, texts: Sequence[str], **_: object) -> list[SparseVector]:
        self.stats = self._stats(texts=len(texts))
        return [self.synth.vector(int(_TEXT_NUMBER.search(t).group(1))) for t in texts]


# ---------------------------------------------------------------- measurements


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3), "n": len(ms)}


def server_config(args: argparse.Namespace, collection: str, **options: Any) -> Any:
    from splade_connectors.qdrant import QdrantConfig

    return QdrantConfig(url=args.url, grpc_port=args.grpc_port, prefer_grpc=args.grpc, collection=collection, timeout=300, **options)


def run_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """One ingestion of `args.points` synthetic points into a fresh server collection."""
    from qdrant_client import QdrantClient, models

    from splade_connectors.ingest import IngestConfig, ingest
    from splade_connectors.qdrant import QdrantStore
    from splade_connectors.records import point_id

    synth = Synthesizer(load_base(args.data, args.datasets))
    synth.chunk(0)
    baseline = current_rss_mb()
    collection = args.collection or f"bench-{args.side}-{args.points}-{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    if args.side == "ours":
        store = QdrantStore(server_config(args, collection, upload_parallel=args.parallel)).open()
        records = ({"_id": doc_id(i), "text": doc_text(i)} for i in range(args.points))
        # one pipeline batch = `parallel` requests of `batch` points each, sent concurrently (as upload_points' workers do)
        report = ingest(records, ReplayEncoder(synth), store, IngestConfig(batch_size=args.batch * args.parallel))
        stored = store.count()
        store.close()
        seconds = time.perf_counter() - started
        extra = {"write_seconds_inside": round(report.write_seconds, 1), "encode_seconds_inside": round(report.encode_seconds, 1)}
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = QdrantClient(url=args.url, grpc_port=args.grpc_port, prefer_grpc=args.grpc, timeout=300, check_compatibility=False)
        client.create_collection(collection, vectors_config={}, sparse_vectors_config={SPARSE_NAME: models.SparseVectorParams()})
        client.create_payload_index(collection, "doc_id", models.PayloadSchemaType.KEYWORD, wait=True)

        def points() -> Iterator[models.PointStruct]:
            for i in range(args.points):
                vector = synth.vector(i)
                yield models.PointStruct(
                    id=point_id(doc_id(i)),
                    vector={SPARSE_NAME: models.SparseVector(indices=vector.indices.tolist(), values=vector.values.tolist())},
                    payload={"doc_id": doc_id(i), "text": doc_text(i)},
                )

        client.upload_points(collection, points(), batch_size=args.batch, parallel=args.parallel, wait=args.client_wait)
        uploaded = time.perf_counter() - started
        stored = client.count(collection, exact=True).count
        while stored < args.points and time.perf_counter() - started < 3600:  # wait=False: until the server applied all
            time.sleep(0.2)
            stored = client.count(collection, exact=True).count
        client.close()
        seconds = time.perf_counter() - started
        extra = {"wait": args.client_wait, "upload_returned_after_s": round(uploaded, 1)}
    if stored != args.points:
        raise SystemExit(f"{args.side}: stored {stored} of {args.points} points")
    return {
        "side": args.side, "points": args.points, "collection": collection, "batch": args.batch, "parallel": args.parallel,
        "grpc": args.grpc, "seconds": round(seconds, 1), "points_per_s": round(args.points / seconds, 1),
        "rss_before_mb": round(baseline, 1), "peak_rss_mb": round(peak_rss_mb(), 1), **extra,
    }


def _latency(search_one: Any, search_many: Any, queries: list[SparseVector], rounds: int, batch: int) -> dict[str, Any]:
    for q in queries[:10]:
        search_one(q)  # warm-up
    singles = []
    for _ in range(rounds):
        for q in queries:
            started = time.perf_counter()
            search_one(q)
            singles.append(time.perf_counter() - started)
    batches = []
    for _ in range(rounds):
        for start in range(0, len(queries) - batch + 1, batch):
            chunk = queries[start : start + batch]
            started = time.perf_counter()
            search_many(chunk)
            batches.append(time.perf_counter() - started)
    out: dict[str, Any] = {"single": percentiles(singles), f"batch_of_{batch}": percentiles(batches) if batches else None}
    if batches:
        out["batched_queries_per_s"] = round(batch * len(batches) / sum(batches), 1)
    return out


def run_latency(args: argparse.Namespace) -> dict[str, Any]:
    """Query latency on one backend at `args.points` points."""
    base = load_base(args.data, args.datasets)
    queries = base.queries[: args.queries]
    synth = Synthesizer(base)
    out: dict[str, Any] = {"backend": args.backend, "points": args.points, "queries": len(queries)}
    if args.backend == "exact":
        started = time.perf_counter()
        docs = synth.csr(args.points)
        by_term = docs.T.tocsr()  # the inverted index: one row per term
        out["build_seconds"] = round(time.perf_counter() - started, 1)

        def one(q: SparseVector) -> list[int]:
            scores = (by_term[q.indices].T @ q.values.astype(np.float64))
            top = np.argpartition(-scores, 10)[:10]
            return top[np.argsort(-scores[top])].tolist()

        def many(batch: list[SparseVector]) -> list[list[int]]:
            from trainer.sparse import to_csr

            scores = (to_csr(batch, VOCAB).astype(np.float64) @ by_term).toarray()
            top = np.argpartition(-scores, 10, axis=1)[:, :10]
            return [row[np.argsort(-scores[i, row])].tolist() for i, row in enumerate(top)]

        out.update(_latency(one, many, queries, args.rounds, args.batch))
        out["peak_rss_mb"] = round(peak_rss_mb(), 1)
        return out
    store, temp = _open_backend(args, synth, out)
    if args.backend == "local":
        queries = queries[: max(args.batch, 40)]  # a pure-Python scan: ~0.6 s per query at 5,000 points
    out.update(_latency(lambda q: store.search_batch([q], top_k=10), lambda b: store.search_batch(b, top_k=10), queries,
                        args.rounds if args.backend != "local" else 1, args.batch))
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    _close_backend(store, temp)
    return out


def _open_backend(args: argparse.Namespace, synth: Synthesizer, out: dict[str, Any]) -> tuple[Any, str | None]:
    """The store of `args.backend` holding `args.points` points: the server's collection, or a new embedded
    (edge, local mode) collection ingested here (timings into `out`). Returns (store, temporary folder)."""
    from splade_connectors.qdrant import QdrantConfig, QdrantStore
    from splade_connectors.records import Document, EncodedDocument

    temp = None
    if args.backend == "server":
        store = QdrantStore(server_config(args, args.collection)).open(create=False)
    else:
        if args.backend == "edge":
            temp = tempfile.mkdtemp(prefix="bench-qdrant-edge-")
            config = QdrantConfig(path=temp, collection="bench")
        else:
            config = QdrantConfig(local_mode=True, collection="bench")
        store = QdrantStore(config).open()
        started = time.perf_counter()
        for start in range(0, args.points, 2048):
            stop = min(args.points, start + 2048)
            store.upsert([
                EncodedDocument(document=Document(id=doc_id(i), text=doc_text(i)), sparse=synth.vector(i)) for i in range(start, stop)
            ])
        upserted = time.perf_counter() - started
        store.finish_ingest()
        out["ingest_seconds"] = round(upserted, 1)
        out["ingest_points_per_s"] = round(args.points / upserted, 1)
        out["flush_optimize_seconds"] = round(time.perf_counter() - started - upserted, 1)
    assert store.count() == args.points
    out["storage_bytes"] = store.storage_bytes()
    return store, temp


def _close_backend(store: Any, temp: str | None) -> None:
    store.close()
    if temp:
        import shutil

        shutil.rmtree(temp, ignore_errors=True)


def _interleaved_latency(searches: dict[str, tuple[Any, Any]], queries: list[SparseVector], rounds: int, batch: int) -> dict[str, dict[str, Any]]:
    """`_latency` for several query kinds at once, interleaved: each query (and each batch) runs through every
    kind in turn, the order rotating, so a shared machine's load swings hit every kind alike and the ratios
    between kinds stay meaningful."""
    names = list(searches)
    for q in queries[:10]:
        for name in names:
            searches[name][0](q)  # warm-up
    singles: dict[str, list[float]] = {name: [] for name in names}
    batches: dict[str, list[float]] = {name: [] for name in names}
    turn = 0
    for _ in range(rounds):
        for q in queries:
            turn += 1
            for name in names[turn % len(names):] + names[: turn % len(names)]:
                started = time.perf_counter()
                searches[name][0](q)
                singles[name].append(time.perf_counter() - started)
    for _ in range(rounds):
        for start in range(0, len(queries) - batch + 1, batch):
            chunk = queries[start : start + batch]
            turn += 1
            for name in names[turn % len(names):] + names[: turn % len(names)]:
                started = time.perf_counter()
                searches[name][1](chunk)
                batches[name].append(time.perf_counter() - started)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        row: dict[str, Any] = {"single": percentiles(singles[name]), f"batch_of_{batch}": percentiles(batches[name]) if batches[name] else None}
        if batches[name]:
            row["batched_queries_per_s"] = round(batch * len(batches[name]) / sum(batches[name]), 1)
        out[name] = row
    return out


def run_two_phase(args: argparse.Namespace) -> dict[str, Any]:
    """Exact and two-phase queries on one engine (server or edge) at `args.points` points: p50/p99 single and
    batched (interleaved: `_interleaved_latency`), and recall@10 of each spec against the exact query on the
    same engine."""
    from splade_connectors.two_phase import TwoPhase

    base = load_base(args.data, args.datasets)
    queries = base.queries[: args.queries]
    out: dict[str, Any] = {"backend": args.backend, "points": args.points, "queries": len(queries), "latency": "interleaved"}
    store, temp = _open_backend(args, Synthesizer(base), out)
    out["load_average_before_queries"] = [round(x, 2) for x in os.getloadavg()]
    exact = [[h.id for h in hits] for hits in store.search_batch(queries, top_k=10, two_phase=None)]
    specs = {"exact": None, **{spec.describe(): spec for spec in (TwoPhase.parse(s) for s in args.specs)}}
    runs = []
    for name, spec in specs.items():
        found = [[h.id for h in hits] for hits in store.search_batch(queries, top_k=10, two_phase=spec)]
        recall = float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact) if e]))
        row: dict[str, Any] = {"spec": name, "recall_at_10": round(recall, 4)}
        if spec is not None:
            row["head_terms_mean"] = round(float(np.mean([spec.split(q)[0].nnz for q in queries])), 1)
        runs.append(row)

    def searches(spec: Any) -> tuple[Any, Any]:
        return (lambda q: store.search_batch([q], top_k=10, two_phase=spec), lambda b: store.search_batch(b, top_k=10, two_phase=spec))

    timed = _interleaved_latency({name: searches(spec) for name, spec in specs.items()}, queries, args.rounds, args.batch)
    for row in runs:
        row.update(timed[row["spec"]])
        print(json.dumps(row), file=sys.stderr, flush=True)
    out["query_nnz_mean"] = round(float(np.mean([q.nnz for q in queries])), 1)
    out["runs"] = runs
    out["load_average_after_queries"] = [round(x, 2) for x in os.getloadavg()]
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    _close_backend(store, temp)
    return out


# ---------------------------------------------------------------- orchestration


def _subprocess(command: list[str], args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    common = ["--data", str(args.data), "--datasets", *args.datasets, "--queries", str(args.queries), "--rounds", str(args.rounds), "--batch", str(args.batch)]
    full = [sys.executable, str(Path(__file__).resolve()), *command, *common, *extra]
    print("$", " ".join(full[1:]), flush=True)
    done = subprocess.run(full, check=True, stdout=subprocess.PIPE, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print("  ", json.dumps(result), flush=True)
    return result


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    load_base(args.data, args.datasets)  # encode once before any timing
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"batch": args.ingest_batch, "parallel": args.parallel, "grpc": args.grpc, "queries": args.queries},
        "ingest": [], "latency": [],
    }
    server = None
    if args.url is None:
        server = QdrantServer(args.binary)
        server.start()
        args.url, args.grpc_port = server.url, server.grpc_port
        results["server"] = server.describe()
    where = ["--url", args.url] + (["--grpc-port", str(args.grpc_port)] if args.grpc_port else []) + (["--grpc"] if args.grpc else [])
    try:
        for points in sizes:
            ours_name = f"bench-ours-{points}-{uuid.uuid4().hex[:6]}"
            ingest_opts = ["--points", str(points), "--parallel", str(args.parallel), "--ingest-batch", str(args.ingest_batch)]
            ingest_opts += ["--client-wait"] if args.client_wait else []
            ours = _subprocess(["_ingest", "--side", "ours", "--collection", ours_name, *ingest_opts], args, where)
            theirs = _subprocess(["_ingest", "--side", "client", *ingest_opts], args, where)
            ours["ratio_to_upload_points"] = round(ours["points_per_s"] / theirs["points_per_s"], 3)
            results["ingest"] += [ours, theirs]
            _drop(args, theirs["collection"])
            for backend in ("server", "edge", "exact"):
                extra = ["--collection", ours_name] if backend == "server" else []
                results["latency"].append(_subprocess(["_latency", "--backend", backend, "--points", str(points), *extra], args, where))
            _drop(args, ours_name)
        local_points = str(args.local_points)
        for backend in ("edge", "exact", "local"):
            results["latency"].append(_subprocess(["_latency", "--backend", backend, "--points", local_points], args, where))
    finally:
        if server is not None:
            server.stop()
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def run_two_phase_all(args: argparse.Namespace) -> dict[str, Any]:
    """The two-phase table: the points ingested into the server by our pipeline, then exact and every spec on the
    server and on the embedded engine (each in its own subprocess)."""
    load_base(args.data, args.datasets)  # encode once before any timing
    results: dict[str, Any] = {
        "machine": _machine(), "settings": {"points": args.points, "queries": args.queries, "rounds": args.rounds,
                                            "batch": args.batch, "specs": args.specs},
        "ingest": [], "two_phase": [],
    }
    server = None
    backends = args.backends.split(",")
    if "server" in backends and args.url is None:
        server = QdrantServer(args.binary)
        server.start()
        args.url, args.grpc_port = server.url, server.grpc_port
        results["server"] = server.describe()
    where = (["--url", args.url] if args.url else []) + (["--grpc-port", str(args.grpc_port)] if args.grpc_port else [])
    specs = ["--specs", *args.specs]
    try:
        for backend in backends:
            extra = []
            if backend == "server":
                name = f"bench-two-phase-{args.points}-{uuid.uuid4().hex[:6]}"
                ingest_opts = ["--points", str(args.points), "--parallel", str(args.parallel), "--ingest-batch", str(args.ingest_batch)]
                results["ingest"].append(_subprocess(["_ingest", "--side", "ours", "--collection", name, *ingest_opts], args, where))
                extra = ["--collection", name]
            row = _subprocess(["_two_phase", "--backend", backend, "--points", str(args.points), *extra, *specs], args, where)
            results["two_phase"].append(row)
            if backend == "server":
                _drop(args, name)
    finally:
        if server is not None:
            server.stop()
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), None)
    return {"cpus": os.cpu_count(), "cpu_model": model, "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def two_phase_markdown(results: dict[str, Any]) -> str:
    """The two-phase table (specs in the order run) and, per engine, the curve: specs sorted by single p50 with
    recall, and whether each meets the issue's target (recall@10 >= 0.99, p50 and p99 <= 1/3 of exact's)."""
    lines = ["| engine | points | query | phase-one terms | recall@10 vs exact | single p50 / p99 (ms) | x exact p50 / p99 | "
             "batch p50 / p99 (ms) | batched q/s |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    curve = ["| engine | query | single p50 (ms) | x exact p50 / p99 | recall@10 | target met |", "| --- | --- | ---: | ---: | ---: | --- |"]
    for block in results["two_phase"]:
        exact = block["runs"][0]["single"]
        for run in block["runs"]:
            single = run["single"]
            batch: dict[str, Any] = next((v for k, v in run.items() if k.startswith("batch_of_") and v), {})
            spec = run["spec"] if run["spec"] == "exact" else f"`{run['spec']}`"
            ratio = f"{single['p50_ms'] / exact['p50_ms']:.2f} / {single['p99_ms'] / exact['p99_ms']:.2f}"
            terms = run.get("head_terms_mean", block.get("query_nnz_mean", "-"))
            lines.append(f"| {block['backend']} | {block['points']:,} | {spec} | {terms} | {run['recall_at_10']:.4f} | {single['p50_ms']:.2f} / "
                         f"{single['p99_ms']:.2f} | {ratio} | {batch.get('p50_ms', '-')} / {batch.get('p99_ms', '-')} | "
                         f"{run.get('batched_queries_per_s', '-')} |")
        for run in sorted(block["runs"], key=lambda r: r["single"]["p50_ms"]):
            single = run["single"]
            p50, p99 = single["p50_ms"] / exact["p50_ms"], single["p99_ms"] / exact["p99_ms"]
            met = "-" if run["spec"] == "exact" else ("**yes**" if run["recall_at_10"] >= 0.99 and p50 <= 1 / 3 and p99 <= 1 / 3 else "no")
            spec = run["spec"] if run["spec"] == "exact" else f"`{run['spec']}`"
            curve.append(f"| {block['backend']} | {spec} | {single['p50_ms']:.2f} | {p50:.2f} / {p99:.2f} | {run['recall_at_10']:.4f} | {met} |")
    return "\n".join(lines + [""] + curve)


def _drop(args: argparse.Namespace, collection: str) -> None:
    from qdrant_client import QdrantClient

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = QdrantClient(url=args.url, timeout=300, check_compatibility=False)
    client.delete_collection(collection)
    client.close()


def markdown(results: dict[str, Any]) -> str:
    lines = ["| ingestion | points | points/s | peak RSS (MB) | RSS before (MB) | ratio |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in results["ingest"]:
        side = "ours: `ingest()` -> `QdrantStore`" if row["side"] == "ours" else f"qdrant-client `upload_points(parallel={row['parallel']})`"
        lines.append(f"| {side} | {row['points']:,} | {row['points_per_s']:,.0f} | {row['peak_rss_mb']:,.0f} | {row['rss_before_mb']:,.0f} | "
                     f"{row.get('ratio_to_upload_points', '')} |")
    lines += ["", "| latency | points | single p50 / p99 (ms) | batch of 32 p50 / p99 (ms) | batched queries/s |", "| --- | ---: | ---: | ---: | ---: |"]
    for row in results["latency"]:
        batch = row.get("batch_of_32") or {}
        lines.append(f"| {row['backend']} | {row['points']:,} | {row['single']['p50_ms']} / {row['single']['p99_ms']} | "
                     f"{batch.get('p50_ms', '-')} / {batch.get('p99_ms', '-')} | {row.get('batched_queries_per_s', '-')} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("all", "prepare", "_ingest", "_latency", "two-phase", "_two_phase"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "beir")
        cmd.add_argument("--datasets", nargs="+", default=list(DATASETS), help="BEIR datasets the points and queries come from")
        cmd.add_argument("--queries", type=int, default=343)
        cmd.add_argument("--rounds", type=int, default=2, help="passes over the queries for latency")
        cmd.add_argument("--batch", type=int, default=32, help="queries per batched search")
        cmd.add_argument("--url", default=None, help="a running server (default: start the native binary)")
        cmd.add_argument("--grpc-port", type=int, default=None)
        cmd.add_argument("--grpc", action="store_true", help="talk gRPC to the server (both ingestion sides)")
        cmd.add_argument("--collection", default=None)
    all_cmd = sub.choices["all"]
    all_cmd.add_argument("--sizes", default="100000,1000000")
    all_cmd.add_argument("--local-points", type=int, default=5000)
    all_cmd.add_argument("--binary", default=None)
    all_cmd.add_argument("--out", type=Path, default=None)
    two = sub.choices["two-phase"]
    two.add_argument("--points", type=int, default=1_000_000)
    two.add_argument("--backends", default="server,edge", help="engines to measure, in order (server, edge)")
    two.add_argument("--binary", default=None)
    two.add_argument("--out", type=Path, default=None)
    for name in ("two-phase", "_two_phase"):
        sub.choices[name].add_argument("--specs", nargs="+", default=list(TWO_PHASE_SPECS), help="two-phase specs to measure")
    sub.choices["_two_phase"].add_argument("--backend", choices=("server", "edge"), required=True)
    sub.choices["_two_phase"].add_argument("--points", type=int, required=True)
    for name in ("all", "_ingest", "two-phase"):
        sub.choices[name].add_argument("--parallel", type=int, default=2, help="upload workers (ours: concurrent requests)")
        sub.choices[name].add_argument("--ingest-batch", type=int, default=256, help="points per upload request batch")
    for name in ("all", "_ingest"):
        sub.choices[name].add_argument("--client-wait", action="store_true",
                                       help="upload_points(wait=True) (default: its own default, wait=False, then poll the count)")
    sub.choices["_ingest"].add_argument("--side", choices=("ours", "client"), required=True)
    sub.choices["_ingest"].add_argument("--points", type=int, required=True)
    sub.choices["_latency"].add_argument("--backend", choices=("server", "edge", "exact", "local"), required=True)
    sub.choices["_latency"].add_argument("--points", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.command == "prepare":
        base = load_base(args.data, args.datasets)
        lengths = np.diff(base.indptr)
        from trainer.models import shipped_model_dir

        caches = [str(encoded_cache_file(args.data / name, shipped_model_dir())) for name in args.datasets]
        print(json.dumps({"caches": caches, "docs": base.docs, "queries": len(base.queries),
                          "doc_nnz_mean": round(float(lengths.mean()), 1), "query_nnz_mean": round(float(np.mean([q.nnz for q in base.queries])), 1)}))
        return 0
    if args.command == "_ingest":
        args.batch = args.ingest_batch
        print(json.dumps(run_ingest(args)))
        return 0
    if args.command == "_latency":
        print(json.dumps(run_latency(args)))
        return 0
    if args.command == "_two_phase":
        print(json.dumps(run_two_phase(args)))
        return 0
    if args.command == "two-phase":
        results = run_two_phase_all(args)
        table = two_phase_markdown(results)
        print(json.dumps(results, indent=2))
        print(table)
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
            args.out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
        return 0
    results = run_all(args)
    table = markdown(results)
    print(json.dumps(results, indent=2))
    print(table)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        args.out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

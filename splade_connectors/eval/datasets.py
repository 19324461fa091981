"""Retrieval datasets for evaluation: local BEIR folders, NanoBEIR from the Hub, local NanoBEIR exports.

Conventions (documented choices):
- NanoBEIR (Hub or local export): documents are encoded as text only, like sentence-transformers'
  `SparseNanoBEIREvaluator`; `with_title=True` prepends the title when the export has one.
- Local BEIR folders (read by `trainer.retrieval.beir`, the reader the trainer's evaluation hook
  uses too): the BEIR convention prepends the title (`title + "\\n" + text`, the same join the
  ingestion pipeline uses: `trainer.retrieval.document_text`); `with_title=False` gives text only.
- Documents and queries with empty text are dropped (as sentence-transformers does).
- Qrels keep their grades. Binary metrics count a document as relevant when its grade is
  >= `relevance_threshold` (default 1); graded nDCG uses the grades themselves.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from splade_connectors.records import Document
from trainer.errors import DatasetError
from trainer.retrieval.beir import read_beir_folder, read_jsonl

logger = logging.getLogger(__name__)

NANOBEIR_DATASET_ID = "sentence-transformers/NanoBEIR-en"
LEGACY_NANOBEIR_PREFIX = "zeta-alpha-ai"
# Short name -> the human-readable part of the split name (`Nano{...}`), as in sentence-transformers.
NANOBEIR_NAMES: dict[str, str] = {
    "climatefever": "ClimateFEVER",
    "dbpedia": "DBPedia",
    "fever": "FEVER",
    "fiqa2018": "FiQA2018",
    "hotpotqa": "HotpotQA",
    "msmarco": "MSMARCO",
    "nfcorpus": "NFCorpus",
    "nq": "NQ",
    "quoraretrieval": "QuoraRetrieval",
    "scidocs": "SCIDOCS",
    "arguana": "ArguAna",
    "scifact": "SciFact",
    "touche2020": "Touche2020",
}
HUB_PROBE_TIMEOUT = 3.0


class HubUnavailableError(DatasetError):
    """A Hub dataset was asked for but the Hugging Face Hub cannot be reached (or offline mode is on)."""


@dataclass(frozen=True)
class RetrievalDataset:
    """A corpus, queries and graded qrels; `relevance_threshold` turns grades into binary relevance."""

    name: str
    corpus: dict[str, dict[str, str]]  # doc id -> {"title", "text"}
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: grade}
    with_title: bool = False
    relevance_threshold: int = 1
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def document_text(self, doc_id: str) -> str:
        """The text that is encoded for a document (title prepended when `with_title`)."""
        doc = self.corpus[doc_id]
        return self.to_document(doc_id, doc).text_to_encode(self.with_title)

    @staticmethod
    def to_document(doc_id: str, doc: Mapping[str, str]) -> Document:
        return Document(id=doc_id, text=doc.get("text", ""), title=doc.get("title") or None)

    def documents(self) -> list[Document]:
        return [self.to_document(doc_id, doc) for doc_id, doc in self.corpus.items()]

    def relevant_docs(self) -> dict[str, set[str]]:
        """Query id -> ids with grade >= threshold, for queries that have at least one."""
        relevant = {q: {d for d, g in docs.items() if g >= self.relevance_threshold} for q, docs in self.qrels.items()}
        return {q: docs for q, docs in relevant.items() if docs}

    def dropped_qrels(self) -> dict[str, int]:
        """Qrels whose query id no query has (they cannot be evaluated): query id -> number of judgements."""
        return {q: len(docs) for q, docs in self.qrels.items() if q not in self.queries}

    def eval_query_ids(self) -> list[str]:
        """Queries that are evaluated: those with a relevant document, in query-file order (as ST does)."""
        relevant = self.relevant_docs()
        return [q for q in self.queries if q in relevant]

    def with_options(self, *, with_title: bool | None = None, relevance_threshold: int | None = None) -> RetrievalDataset:
        return replace(
            self,
            with_title=self.with_title if with_title is None else with_title,
            relevance_threshold=self.relevance_threshold if relevance_threshold is None else relevance_threshold,
        )

    def subset(self, doc_ids: Iterable[str], *, name: str | None = None) -> RetrievalDataset:
        """Keep only these documents; qrels shrink to them and queries without qrels left are dropped."""
        keep = [d for d in doc_ids if d in self.corpus]
        kept = set(keep)
        qrels = {q: {d: g for d, g in docs.items() if d in kept} for q, docs in self.qrels.items()}
        qrels = {q: docs for q, docs in qrels.items() if docs}
        return replace(
            self, name=name or self.name, corpus={d: self.corpus[d] for d in keep},
            queries={q: t for q, t in self.queries.items() if q in qrels}, qrels=qrels,
        )

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.corpus)} docs, {len(self.eval_query_ids())} evaluated queries, "
            f"title={'yes' if self.with_title else 'no'}, relevant if grade >= {self.relevance_threshold}"
        )


# ---- local BEIR folders ---------------------------------------------------------------------------------
def load_beir_folder(
    folder: str | Path,
    *,
    split: str = "test",
    with_title: bool = True,
    relevance_threshold: int = 1,
    name: str | None = None,
) -> RetrievalDataset:
    """A BEIR folder (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`), read by the core's one BEIR reader."""
    root = Path(folder)
    data = read_beir_folder(root, split)
    return RetrievalDataset(
        name=name or root.name, corpus=data.corpus, queries=data.queries, qrels=data.qrels,
        with_title=with_title, relevance_threshold=relevance_threshold, source=str(root),
    )


# ---- NanoBEIR rows (Hub or local export) ------------------------------------------------------------------
def _from_rows(
    name: str,
    corpus_rows: Iterable[Mapping[str, Any]],
    query_rows: Iterable[Mapping[str, Any]],
    qrel_rows: Iterable[Mapping[str, Any]],
    *,
    with_title: bool,
    relevance_threshold: int,
    source: str,
) -> RetrievalDataset:
    """Build from NanoBEIR-style rows (`_id`/`text`[/`title`]; `query-id`/`corpus-id`[/`score`])."""
    try:
        corpus = {
            str(r["_id"]): {"title": str(r.get("title") or ""), "text": str(r.get("text") or "")}
            for r in corpus_rows
        }
        queries = {str(r["_id"]): str(r.get("text") or "") for r in query_rows}
        qrels: dict[str, dict[str, int]] = {}
        for row in qrel_rows:
            doc_ids = row["corpus-id"] if isinstance(row["corpus-id"], list) else [row["corpus-id"]]
            grade = int(row["score"]) if row.get("score") is not None else 1
            for doc_id in doc_ids:
                qrels.setdefault(str(row["query-id"]), {})[str(doc_id)] = grade
    except KeyError as exc:
        raise DatasetError(f"{source}: a row has no {exc.args[0]!r} column") from None
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{source}: unreadable row ({exc})") from None
    return RetrievalDataset(
        name=name, corpus={d: doc for d, doc in corpus.items() if doc["text"]}, queries={q: t for q, t in queries.items() if t},
        qrels=qrels, with_title=with_title, relevance_threshold=relevance_threshold, source=source,
    )


def nanobeir_split(name: str) -> str:
    """`scifact` -> `NanoSciFact` (case-insensitive; `NanoSciFact` is accepted too)."""
    key = name.lower().removeprefix("nano")
    if key not in NANOBEIR_NAMES:
        raise DatasetError(f"unknown NanoBEIR dataset {name!r}; known: {', '.join(NANOBEIR_NAMES)}")
    return f"Nano{NANOBEIR_NAMES[key]}"


def _offline_flag() -> bool:
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"} for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _probe_hub(timeout: float = HUB_PROBE_TIMEOUT) -> str | None:
    """None when the Hub endpoint accepts a TCP connection within `timeout`, else the reason."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")):
        return None  # behind a proxy a direct probe says nothing; let the client try
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{host}:{port} unreachable ({exc})"


def _load_hub_split(dataset_id: str, subset: str | None, split: str) -> Any:
    from datasets import load_dataset  # lazy: only Hub datasets need it

    try:
        return load_dataset(dataset_id, subset, split=split) if subset else load_dataset(dataset_id, split=split)
    except (ConnectionError, OSError) as exc:
        raise HubUnavailableError(
            f"could not load {dataset_id} ({subset or 'default'}/{split}) from the Hugging Face Hub or its cache: {exc}. "
            "Download it where the Hub is reachable, or pass a local folder (BEIR or a NanoBEIR parquet/jsonl export)."
        ) from exc


def load_nanobeir(
    name: str,
    *,
    dataset_id: str = NANOBEIR_DATASET_ID,
    with_title: bool = False,
    relevance_threshold: int = 1,
) -> RetrievalDataset:
    """A NanoBEIR dataset from the Hub: `sentence-transformers/NanoBEIR-en` (subsets corpus/queries/qrels,
    split `Nano{Name}`), or a legacy per-dataset id such as `zeta-alpha-ai/NanoSciFact` (split `train`).

    Fails fast with `HubUnavailableError` when offline (HF_HUB_OFFLINE and nothing cached) or when the
    Hub does not answer a TCP connect within a few seconds (no multi-retry wait).
    """
    legacy = dataset_id.startswith(f"{LEGACY_NANOBEIR_PREFIX}/") or dataset_id == LEGACY_NANOBEIR_PREFIX
    split = nanobeir_split(name)
    repo = f"{LEGACY_NANOBEIR_PREFIX}/{split}" if dataset_id == LEGACY_NANOBEIR_PREFIX else dataset_id
    if not _offline_flag():
        reason = _probe_hub()
        if reason:
            raise HubUnavailableError(
                f"NanoBEIR {name!r} needs the Hugging Face Hub ({repo}), which is not reachable: {reason}. "
                "Set HF_HUB_OFFLINE=1 to use a cached copy, or pass a local folder (BEIR or NanoBEIR export)."
            )
    if legacy:
        rows = {subset: _load_hub_split(repo, subset, "train") for subset in ("corpus", "queries", "qrels")}
    else:
        rows = {subset: _load_hub_split(repo, subset, split) for subset in ("corpus", "queries", "qrels")}
    return _from_rows(
        split, rows["corpus"], rows["queries"], rows["qrels"],
        with_title=with_title, relevance_threshold=relevance_threshold, source=f"hf:{repo}:{split}",
    )


# ---- local NanoBEIR exports -------------------------------------------------------------------------------
_EXPORT_SUFFIXES = (".parquet", ".jsonl", ".json")


def _export_file(folder: Path, subset: str, split: str | None) -> Path | None:
    """Find `<subset>/<split>.parquet`, `<subset>/*.parquet`, `<subset>.parquet`, `<subset>-*.parquet`, ... (or jsonl)."""
    candidates: list[Path] = []
    sub = folder / subset
    for suffix in _EXPORT_SUFFIXES:
        if split:
            candidates += [sub / f"{split}{suffix}", folder / f"{subset}_{split}{suffix}", folder / f"{split}_{subset}{suffix}"]
        candidates += [folder / f"{subset}{suffix}"]
        if sub.is_dir():
            candidates += sorted(sub.glob(f"*{suffix}"))
        candidates += sorted(folder.glob(f"{subset}-*{suffix}")) + sorted(folder.glob(f"{subset}_*{suffix}"))
    return next((p for p in candidates if p.is_file()), None)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq  # lazy: comes with `datasets`

        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        return rows
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return list(data) if isinstance(data, list) else [data]
    return list(read_jsonl(path))


def load_nanobeir_export(
    folder: str | Path,
    *,
    name: str | None = None,
    split: str | None = None,
    with_title: bool = False,
    relevance_threshold: int = 1,
) -> RetrievalDataset:
    """A local export of NanoBEIR (corpus/queries/qrels as parquet or jsonl files, e.g. `corpus/NanoSciFact.parquet`
    or `corpus.parquet`, or `corpus.jsonl`); `split` picks one dataset when a file holds several splits by name."""
    root = Path(folder)
    files = {subset: _export_file(root, subset, split) for subset in ("corpus", "queries", "qrels")}
    missing = [s for s, p in files.items() if p is None]
    if missing:
        raise DatasetError(f"{root} is not a NanoBEIR export: no {', '.join(missing)} file (parquet/jsonl)")
    rows = {subset: _read_rows(path) for subset, path in files.items() if path is not None}
    return _from_rows(
        name or split or root.name, rows["corpus"], rows["queries"], rows["qrels"],
        with_title=with_title, relevance_threshold=relevance_threshold, source=str(root),
    )


# ---- one entry point ----------------------------------------------------------------------------------------
def load_retrieval_dataset(
    spec: str | Path,
    *,
    split: str = "test",
    with_title: bool | None = None,
    relevance_threshold: int = 1,
    dataset_id: str = NANOBEIR_DATASET_ID,
) -> RetrievalDataset:
    """A folder (BEIR, or NanoBEIR export) or a NanoBEIR name (`scifact`, `NanoSciFact`).

    `with_title=None` means the convention of the source: title for BEIR folders, text only for NanoBEIR.
    """
    path = Path(spec)
    if path.is_dir():
        if (path / "corpus.jsonl").is_file() and (path / "qrels").is_dir():
            return load_beir_folder(
                path, split=split, with_title=True if with_title is None else with_title,
                relevance_threshold=relevance_threshold,
            )
        return load_nanobeir_export(path, with_title=bool(with_title), relevance_threshold=relevance_threshold)
    text = str(spec)
    if text.lower().removeprefix("nano") in NANOBEIR_NAMES:
        return load_nanobeir(text, dataset_id=dataset_id, with_title=bool(with_title), relevance_threshold=relevance_threshold)
    raise DatasetError(f"{text!r} is neither a folder nor a NanoBEIR name ({', '.join(NANOBEIR_NAMES)})")

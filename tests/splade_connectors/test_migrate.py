"""`splade-connectors migrate` on a real Qdrant server and a real OpenSearch: no failed query, switch, rollback.

Old collection: the shipped model with every vector cut to its 4 largest weights (poor); new: the
same model with no cut (better), so the nDCG@10 gate lets the switch through. A thread queries the
alias through the whole migration; not one query may fail.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest

from splade_connectors.cli import main
from splade_connectors.migrate import previous_alias
from splade_connectors.registry import open_store, store_config
from splade_connectors.store import AliasStore, SparseStore, StoreConfigBase
from tests.conftest import load_beir_slice, write_beir_folder
from tests.live_stores import LiveStore
from trainer.encoder import SpladeEncoder
from trainer.sparse import SparseVector

MODEL_OPTIONS = ["--max-length", "96", "--batch-size", "16"]
OLD_OPTIONS = [*MODEL_OPTIONS, "--top-k-terms", "4"]


@pytest.fixture(scope="module")
def beir_folder(scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 SciFact queries, their judged documents and filler: 60 documents."""
    full = load_beir_slice(scifact_dir, 0)
    queries = dict(list(full.queries.items())[:20])
    judged = {d for q in queries for d in full.qrels[q]}
    by_id = {d["_id"]: d for d in full.corpus}
    docs = {d: (by_id[d]["title"], by_id[d]["text"]) for d in sorted(judged)}
    with open(scifact_dir / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            if len(docs) >= 60:
                break
            row = json.loads(line)
            docs.setdefault(row["_id"], (row.get("title", ""), row["text"]))
    qrels = [(q, d, g) for q in queries for d, g in full.qrels[q].items()]
    return write_beir_folder(tmp_path_factory.mktemp("migrate") / "beir", docs, queries, qrels)


def _config(kind: str, live: LiveStore, name: str) -> StoreConfigBase:
    if kind == "qdrant":
        return store_config("qdrant", collection=name, url=live.url)
    return store_config("opensearch", index=name, hosts=[live.url])


def _store_args(kind: str, live: LiveStore, name: str) -> list[str]:
    assert live.url is not None
    if kind == "qdrant":
        return ["--store", "qdrant", "--qdrant-url", live.url, "--collection", name]
    return ["--store", "opensearch", "--opensearch-url", live.url, "--index", name]


@pytest.fixture(params=["qdrant", "opensearch"])
def live(request: pytest.FixtureRequest) -> tuple[str, LiveStore]:
    kind = request.param
    fixture = "qdrant_server_store" if kind == "qdrant" else "opensearch_store"
    return kind, request.getfixturevalue(fixture)


def _top(store: SparseStore, vectors: list[SparseVector]) -> list[list[tuple[str, float]]]:
    return [[(h.id, round(h.score, 3)) for h in hits] for hits in store.search_batch(vectors, top_k=5)]


class QueryLoop(threading.Thread):
    """Searches the alias until stopped; records every failure."""

    def __init__(self, config: StoreConfigBase, vocabulary: list[str], vectors: list[SparseVector]) -> None:
        super().__init__(daemon=True)
        self.config, self.vocabulary, self.vectors = config, vocabulary, vectors
        self.stop = threading.Event()
        self.rounds = 0
        self.failures: list[str] = []

    def run(self) -> None:
        with open_store(self.config, vocabulary=self.vocabulary, create=False) as store:
            while not self.stop.is_set():
                try:
                    hits = store.search_batch(self.vectors, top_k=5)
                    if not any(hits):
                        self.failures.append("no hit for any query")
                except Exception as exc:
                    self.failures.append(repr(exc))
                self.rounds += 1


def test_migrate_switches_without_a_failed_query_and_rolls_back(
    live: tuple[str, LiveStore], beir_folder: Path, encoder: SpladeEncoder, capsys: pytest.CaptureFixture[str],
) -> None:
    kind, where = live
    alias = f"mig-{uuid.uuid4().hex[:8]}"
    old_name = f"{alias}__v1"
    vocabulary = encoder.model.id_to_token()
    vectors = encoder.encode_queries(["cell", "protein expression in cancer", "vitamin d deficiency"])
    made: list[str] = [old_name]
    try:
        assert main(["ingest", "--input", str(beir_folder), "--no-progress", *_store_args(kind, where, old_name), *OLD_OPTIONS]) == 0
        with open_store(_config(kind, where, old_name), vocabulary=vocabulary, create=False) as admin:
            assert isinstance(admin, AliasStore)
            admin.update_aliases({alias: old_name})
            old_results = _top(admin, vectors)
        capsys.readouterr()

        loop = QueryLoop(_config(kind, where, alias), vocabulary, vectors)
        loop.start()
        try:
            code = main([
                "migrate", "--input", str(beir_folder), "--no-progress", "--json", *_store_args(kind, where, alias), *MODEL_OPTIONS,
                "--eval-beir", str(beir_folder), "--old-model-options", " ".join(OLD_OPTIONS),
            ])
            rounds_during = loop.rounds
        finally:
            loop.stop.set()
            loop.join(timeout=120)
        out = capsys.readouterr().out
        assert code == 0, out
        report = json.loads(out)
        made.append(report["new"])
        assert loop.failures == []
        assert rounds_during > 0
        assert report["switched"] is True, report
        assert report["new_score"] >= report["old_score"]

        with open_store(_config(kind, where, report["new"]), vocabulary=vocabulary, create=False) as new_store:
            assert isinstance(new_store, AliasStore)
            assert new_store.resolve(alias) == report["new"]
            assert new_store.aliases()[previous_alias(alias)] == old_name
            new_results = _top(new_store, vectors)
            assert new_store.count() == 60
        assert new_results != old_results
        with open_store(_config(kind, where, alias), vocabulary=vocabulary, create=False) as through_alias:
            assert _top(through_alias, vectors) == new_results
            assert through_alias.count() == 60

        assert main(["migrate", "--rollback", "--json", *_store_args(kind, where, alias)]) == 0
        assert json.loads(capsys.readouterr().out)["now"] == old_name
        with open_store(_config(kind, where, alias), vocabulary=vocabulary, create=False) as through_alias:
            assert _top(through_alias, vectors) == old_results

        assert main(["migrate", "--cleanup", "--json", *_store_args(kind, where, alias)]) == 0
        assert json.loads(capsys.readouterr().out)["deleted"] == report["new"]
        with open_store(_config(kind, where, old_name), vocabulary=vocabulary, create=False) as admin:
            assert isinstance(admin, AliasStore)
            assert previous_alias(alias) not in admin.aliases()
            assert admin.resolve(alias) == old_name
    finally:
        _drop_all(kind, where, vocabulary, alias, made)


def _drop_all(kind: str, where: LiveStore, vocabulary: list[str], alias: str, names: list[str]) -> None:
    for name in names:
        try:
            with open_store(_config(kind, where, name), vocabulary=vocabulary, create=False) as store:
                if isinstance(store, AliasStore):
                    store.update_aliases({alias: None, previous_alias(alias): None})
                store.drop()
        except Exception:
            pass


def test_migrate_api_first_switch_gate_catch_up_and_refusals(
    qdrant_server_store: LiveStore, beir_folder: Path, encoder: SpladeEncoder, tmp_path: Path,
) -> None:
    """First migration creates the alias; the replay after the switch brings a document that reached the source
    during the build; a failed gate leaves the alias alone (new collection kept); a plain collection and the
    embedded engine are refused."""
    from splade_connectors.errors import ConfigError
    from splade_connectors.eval.datasets import load_beir_folder
    from splade_connectors.ingest import IngestConfig, ingest
    from splade_connectors.migrate import migrate
    from splade_connectors.records import Document

    dataset = load_beir_folder(beir_folder)
    documents = [Document(id=d, text=doc["text"], title=doc.get("title") or None) for d, doc in dataset.corpus.items()]
    late = Document(id="late-arrival", text="a document added to the source while the new collection was built")
    alias = f"mig-{uuid.uuid4().hex[:8]}"
    config = _config("qdrant", qdrant_server_store, alias)
    builds: list[tuple[str, bool]] = []

    def build(target: StoreConfigBase, replay: bool) -> object:
        builds.append((target.collection_name, replay))
        source = [*documents, late] if replay else documents
        with open_store(target) as store:
            return ingest(source, encoder, store, IngestConfig(skip_unchanged=replay))

    made: list[str] = []
    try:
        first = migrate(config, build=build, new_encoder=encoder, dataset=dataset, new_name=f"{alias}__a")
        made.append(first.new)
        assert (first.switched, first.old) == (True, None)
        assert builds == [(f"{alias}__a", False), (alias, True)]
        with open_store(config, create=False) as through_alias:
            assert through_alias.count() == len(documents) + 1
            assert isinstance(through_alias, AliasStore) and through_alias.resolve() == f"{alias}__a"

        refused = migrate(config, build=build, new_encoder=encoder, dataset=dataset, min_delta=1.0, new_name=f"{alias}__b")
        made.append(refused.new)
        assert refused.switched is False and refused.old == f"{alias}__a"
        assert refused.new_score == pytest.approx(refused.old_score)  # same model: same ranking
        with open_store(config.with_collection(f"{alias}__b"), create=False) as kept:
            assert kept.count() == len(documents)
            assert isinstance(kept, AliasStore) and kept.resolve(alias) == f"{alias}__a"

        with pytest.raises(ConfigError, match="is a collection, not an alias"):
            migrate(config.with_collection(f"{alias}__a"), build=build, new_encoder=encoder, dataset=dataset)
        embedded = store_config("qdrant", collection=alias, path=str(tmp_path / "edge"))
        with pytest.raises(ConfigError, match="needs aliases"):
            migrate(embedded, build=build, new_encoder=encoder, dataset=dataset)
    finally:
        _drop_all("qdrant", qdrant_server_store, encoder.model.id_to_token(), alias, made)

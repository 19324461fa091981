"""The driver of the Ray engine: one Ray Data pipeline behind the same contract as `ingest_file`.

    read (sharded, RecordDatasource) -> PrepareBatches (actor pool: validate, hash, stored hashes)
      -> EncodeBatches (actor pool: one model per actor, `num_gpus` each) -> StoreDatasink (write tasks)

Ray Data streams blocks between the stages with backpressure, so each worker holds a bounded
number of records and vectors whatever the corpus size. A killed encoder actor is restarted and
its task re-run; writes are idempotent (deterministic point ids) and only the successful attempt
of a write task is counted, so counts stay exact.

The engine keeps no checkpoint: an interrupted job is resumed by running it again with
`skip_unchanged`, which skips every document already stored with the same content hash.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from splade_connectors.errors import ConfigError, IngestError, InputError, SpladeError, StoreError
from splade_connectors.ingest.config import IngestConfig
from splade_connectors.ingest.identity import EncodingIdentity, encoding_identity
from splade_connectors.ingest.ray_engine.options import EncoderSpec, RayOptions
from splade_connectors.ingest.report import IngestReport
from splade_connectors.ingest.session import IngestSession, claim_store, later_duplicates, stopped
from splade_connectors.ingest.sources import beir_corpus_path, open_source
from splade_connectors.registry import open_store
from splade_connectors.store import StoreConfigBase

logger = logging.getLogger(__name__)


def ingest_file_ray(
    path: str | Path,
    encoder: EncoderSpec,
    store: StoreConfigBase,
    config: IngestConfig | None = None,
    options: RayOptions | None = None,
) -> IngestReport:
    """Ingest a JSONL/Parquet file or BEIR folder into the store `store` names, on Ray (see the module docstring)."""
    config = config or IngestConfig()
    options = options or RayOptions()
    if config.checkpoint is not None:
        raise ConfigError(
            "the Ray engine keeps no checkpoint: to resume, run again with skip_unchanged (--skip-unchanged)"
        )
    if config.passages:
        raise ConfigError("the Ray engine does not ingest passages yet: use the single engine (--engine single) with --passages")
    if store.in_process:
        raise ConfigError(
            f"the Ray engine cannot write to {store.describe()}: an embedded store is one process's folder (or memory) "
            "and Ray writes from worker processes; use the single engine (--engine single) or a Qdrant server (--qdrant-url)"
        )
    corpus = beir_corpus_path(path)
    _require_ray()
    started = time.perf_counter()
    with _ray_session(options):
        options = _resolve_gpus(options)
        dtype = encoder.actor_dtype(options.gpus_per_encoder or 0.0)
        identity, vocabulary = _identity_and_vocabulary(encoder, dtype, config.with_title)
        report = _ingest(corpus, encoder, store, vocabulary, identity, config, options)
    report.seconds = time.perf_counter() - started
    return report


def _ingest(
    corpus: Path,
    encoder: EncoderSpec,
    store: StoreConfigBase,
    vocabulary: list[str],
    identity: EncodingIdentity,
    config: IngestConfig,
    options: RayOptions,
) -> IngestReport:
    """The Ray Data pipeline as the load of an ingestion session; delete-missing reads the source's ids on the driver."""
    with open_store(store, vocabulary=vocabulary, create=True) as target:
        claim_store(target, config, identity, vocabulary)
        session = IngestSession(target, config, source_name=str(corpus), engine="ray")
        return session.run(
            lambda: _run_pipeline(corpus, encoder, store, vocabulary, identity, config, options, session.report),
            reread=lambda: open_source(corpus),
        )


def _resolve_gpus(options: RayOptions) -> RayOptions:
    """`gpus_per_encoder=None`: one GPU per encoder actor when the cluster has GPUs, else CPU."""
    if options.gpus_per_encoder is not None:
        return options
    import ray

    gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    logger.info("encoder actors use %s", f"{gpus:g} GPU each" if gpus else "CPUs (no GPU in the cluster)")
    return options.model_copy(update={"gpus_per_encoder": gpus})


def _require_ray() -> None:
    try:
        import ray
        import ray.data  # noqa: F401 - imported only to check that Ray (with its data extra) is installed
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the Ray engine needs the {exc.name!r} package: pip install 'splade-connectors[ray]'") from None


def _identity_and_vocabulary(encoder: EncoderSpec, dtype: str, with_title: bool) -> tuple[EncodingIdentity, list[str]]:
    """Load the model once on the driver's CPU: the actors' encoding identity, and the vocabulary stores need."""
    local = encoder.load(device="cpu", dtype=dtype)
    identity = encoding_identity(local, with_title=with_title)
    vocabulary = local.model.id_to_token()
    return identity, vocabulary


@contextlib.contextmanager
def _ray_session(options: RayOptions) -> Iterator[None]:
    """Use the running Ray; else connect to `options.address` or start a local instance (and stop it after)."""
    import ray

    if ray.is_initialized():
        yield
        return
    if options.address:
        ray.init(address=options.address, include_dashboard=False)
    else:
        ray.init(num_cpus=options.num_cpus, object_store_memory=options.object_store_memory, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


def _run_pipeline(
    corpus: Path,
    encoder: EncoderSpec,
    store: StoreConfigBase,
    vocabulary: list[str],
    identity: EncodingIdentity,
    config: IngestConfig,
    options: RayOptions,
    report: IngestReport,
) -> int:
    """Run the pipeline, add what its write tasks did to `report`; returns the input records read."""
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    from splade_connectors.ingest.ray_engine.sink import StoreDatasink
    from splade_connectors.ingest.ray_engine.source import RecordDatasource
    from splade_connectors.ingest.ray_engine.stages import EncodeBatches, PrepareBatches

    context = DataContext.get_current()
    saved = (context.enable_progress_bars, context.raise_original_map_exception)
    # the original exception of a stage (e.g. IngestError) instead of Ray Data's UserCodeException wrapper
    context.enable_progress_bars, context.raise_original_map_exception = options.show_progress, True
    try:
        group = options.encode_batch_size or config.batch_size
        shard_records = -(-(options.shard_records or 16 * group) // group) * group  # whole encoder groups per block
        # duplicate ids: which occurrence is first is only known in input order, so the driver finds the later ones
        duplicates = frozenset(later_duplicates(open_source(corpus), config))
        source = RecordDatasource(corpus, shard_records)
        # one block per shard (no splitting), prepared whole: each encoder group is one row (see stages.py)
        dataset = ray.data.read_datasource(source, num_cpus=options.task_cpus, override_num_blocks=max(1, len(source.shards)))
        dataset = dataset.map_batches(
            PrepareBatches,
            fn_constructor_kwargs={
                "store_config": store, "vocabulary": vocabulary, "config": config, "identity_key": identity.key(), "group": group,
                "duplicates": duplicates,
            },
            batch_size=None,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=options.preparers),
            num_cpus=options.task_cpus,
        )
        dataset = dataset.map_batches(
            EncodeBatches,
            fn_constructor_kwargs={
                "spec": encoder,
                "device": encoder.actor_device(options.gpus_per_encoder or 0.0),
                "dtype": encoder.actor_dtype(options.gpus_per_encoder or 0.0),
                "expected": identity,
                "threads": int(round(options.cpus_per_encoder)),
                "config": config,
            },
            batch_size=options.groups_per_call,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=options.encoders),
            num_cpus=options.cpus_per_encoder,
            num_gpus=options.gpus_per_encoder or None,
        )
        sink = StoreDatasink(store, vocabulary, config)
        try:
            dataset.write_datasink(sink, ray_remote_args={"num_cpus": options.task_cpus}, concurrency=options.writers)
        except Exception as exc:  # Ray wraps what a stage raised: give the project's error back
            raise _project_error(exc) from exc
    finally:
        context.enable_progress_bars, context.raise_original_map_exception = saved
    sink.add_to(report)
    return report.records


def _project_error(error: BaseException) -> SpladeError:
    """The project error a Ray stage raised (found in the cause chain), else an `IngestError` naming the failure."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SpladeError) and type(current).__module__.startswith(("splade_connectors", "trainer")):
            message = " ".join(str(current).split())
            if isinstance(current, (IngestError, InputError, ConfigError)):
                return type(current)(message)
            if isinstance(current, StoreError):
                return stopped(message)
            return IngestError(message)
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    text = " ".join(str(error).split())
    return IngestError(f"the Ray job failed: {type(error).__name__}: {text[:500]}")

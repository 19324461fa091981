"""The resume file of the single-process engine: what was done, for which source, store and model.

A checkpoint is bound to its run: the source (file name + content fingerprint), the store kind and
collection/index, and the encoding identity (model + options). Loading validates the file (a
truncated, non-numeric or foreign file is one `ResumeError` line), and a resume refuses:
- another source, store kind, collection/index, model or encoding options;
- a store that lost data: after making every earlier write countable (`finish_ingest`, which
  refreshes OpenSearch), its count must reach what the checkpoint accounts for (count when the
  ingestion began + new documents written - documents deleted), and a sample of written ids
  (`probe_ids`) must still be there (read in real time with `fetch_payloads`).
A different store *location* (URL, port, folder) with the same kind and collection is accepted
only when both data checks pass: the data the checkpoint describes is verifiably there.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError

from splade_connectors.errors import ConfigError, ResumeError
from splade_connectors.ingest.identity import EncodingIdentity
from splade_connectors.retry import RetryPolicy
from splade_connectors.store import SparseStore

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION: Final = 2
PROBE_SIZE = 8


class RunIdentity(BaseModel):
    """What a checkpoint belongs to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    store_kind: str
    store: str
    collection: str
    encoding: EncodingIdentity | None  # None: an encoder without identity(), which never keeps a checkpoint


class CheckpointState(BaseModel):
    """Progress of one ingestion, as written to the checkpoint file after every stored batch."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[2] = CHECKPOINT_VERSION
    run: RunIdentity
    records_done: NonNegativeInt = 0
    written: NonNegativeInt = 0
    new: NonNegativeInt = 0
    deleted: NonNegativeInt = 0
    store_count_at_start: NonNegativeInt = 0
    probe_ids: list[str] = Field(default_factory=list, max_length=PROBE_SIZE)

    def expected_min_count(self) -> int:
        """The fewest documents the store can hold if nothing written was lost."""
        return max(0, self.store_count_at_start + self.new - self.deleted)

    def offer_probe(self, doc_id: str, rng: random.Random) -> None:
        """Reservoir-sample written ids (`written` must already count this one)."""
        if len(self.probe_ids) < PROBE_SIZE:
            self.probe_ids.append(doc_id)
            return
        slot = rng.randrange(max(self.written, 1))
        if slot < PROBE_SIZE:
            self.probe_ids[slot] = doc_id


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "file"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


class CheckpointFile:
    """Reading (validated), writing (atomically) and removing one checkpoint file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> CheckpointState | None:
        """The saved state, None when there is no file; `ResumeError` when it cannot be used."""
        if self.path is None or not self.path.exists():
            return None
        try:
            text = self.path.read_text(encoding="utf-8")
            data = json.loads(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ResumeError(
                f"checkpoint {self.path} is unreadable ({type(exc).__name__}: {exc}); delete it to start over"
            ) from None
        if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
            found = data.get("version") if isinstance(data, dict) else type(data).__name__
            raise ResumeError(
                f"checkpoint {self.path} is not a version-{CHECKPOINT_VERSION} ingestion checkpoint (found {found!r}); "
                "delete it to start over"
            )
        try:
            return CheckpointState.model_validate(data)
        except ValidationError as exc:
            raise ResumeError(f"checkpoint {self.path} is invalid ({_one_line(exc)}); delete it to start over") from None

    def save(self, state: CheckpointState) -> None:
        if self.path is None:
            return
        if state.run.encoding is None:  # run_identity refuses such a run before it starts
            raise ConfigError(f"checkpoint {self.path} needs an encoder with identity(); nothing can be resumed without it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(state.model_dump_json(), encoding="utf-8")
        os.replace(tmp, self.path)

    def clear(self) -> None:
        if self.path is not None and self.path.exists():
            self.path.unlink()


def check_belongs(state: CheckpointState, run: RunIdentity, path: Path) -> bool:
    """Refuse a checkpoint of another source, store kind, collection or encoding; True if the location moved."""
    saved = state.run
    hint = f"delete {path} to start over"
    if saved.source != run.source:
        raise ResumeError(f"checkpoint {path} belongs to another source ({saved.source!r}, not {run.source!r}); {hint}")
    if saved.store_kind != run.store_kind:
        raise ResumeError(f"checkpoint {path} belongs to a {saved.store_kind} store, not {run.store_kind}; {hint}")
    if saved.collection != run.collection:
        raise ResumeError(
            f"checkpoint {path} belongs to collection/index {saved.collection!r}, not {run.collection!r}; {hint}"
        )
    if saved.encoding is None or run.encoding is None:
        changed = ["encoder identity"]
    else:
        changed = saved.encoding.differences(run.encoding)
    if changed:
        raise ResumeError(
            f"checkpoint {path} was written with another model or encoding options (differs in: {', '.join(changed)}); {hint}"
        )
    return saved.store != run.store


def verify_store(store: SparseStore, state: CheckpointState, path: Path, retry: RetryPolicy, *, moved: bool) -> None:
    """Refuse to resume into a store that no longer holds what the checkpoint says was written."""
    where = store.describe()
    retry.call(store.finish_ingest, what=f"refresh of {where}")  # writes of the interrupted run become countable
    count = retry.call(store.count, what=f"count on {where}")
    expected = state.expected_min_count()
    hint = f"delete {path} and ingest again"
    if count < expected:
        raise ResumeError(
            f"{where} holds {count} documents but checkpoint {path} accounts for at least {expected}: "
            f"the store lost data since the interrupted run; {hint}"
        )
    if state.probe_ids:
        found = retry.call(store.fetch_payloads, state.probe_ids, [], what=f"read of {where}")
        missing = [doc_id for doc_id in state.probe_ids if doc_id not in found]
        if missing:
            raise ResumeError(
                f"{where} lacks {len(missing)} of {len(state.probe_ids)} sampled documents the interrupted run wrote "
                f"(e.g. {missing[0]!r}): the store lost data or is another one; {hint}"
            )
    if moved:
        logger.warning(
            "checkpoint %s was written for %s; resuming into %s, which holds the checkpoint's data",
            path, state.run.store, store.identity(),
        )

"""A full disk under the embedded Qdrant engine is one `error:` line and exit 2, never a SIGBUS (issue 26).

The engine writes through memory maps and dies with SIGBUS (exit 135) when its file system fills, even
when only opening a collection for `search`. The tests use real small tmpfs mounts (root needed; skipped
with the reason otherwise): a 5 MB one refuses `ingest` and `search` up front; on a larger one an ingestion
whose free space runs below the reserve stops with one line, keeps its checkpoint, and resumes once the
file system is made larger (space freed): every document is then counted and found.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.splade_connectors.cli.conftest import CliRun, write_jsonl

Cli = Callable[..., CliRun]
MB = 1024 * 1024
DOCS = [{"_id": f"d{i}", "text": f"Note {i}: the centurion Cornelius number {i} met Peter in Caesarea."} for i in range(40)]


def _mount(folder: Path, size: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True, capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mounts a tmpfs of a given size (`mount -o remount` resizes it); unmounted afterwards."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted: list[bool] = []

    def mount(size: str) -> Path:
        if mounted:
            subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True, capture_output=True, text=True)
            return folder
        try:
            _mount(folder, size)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            pytest.skip(f"cannot mount a small tmpfs here (root and mount(8) needed): {detail.strip()}")
        mounted.append(True)
        return folder

    yield mount
    if mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def test_a_5mb_folder_is_one_line_for_ingest_and_search(cli: Cli, small_disk: Callable[[str], Path], tmp_path: Path) -> None:
    disk = small_disk("5m")
    corpus = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    store = ["--qdrant-path", str(disk / "qdrant"), "--collection", "c"]
    line = cli("ingest", "--input", str(corpus), *store, "--no-progress").error_line()
    assert "MB free" in line and "reserve of 64 MB" in line
    line = cli("search", *store, "-q", "cornelius").error_line()
    assert "MB free" in line


def test_an_ingestion_stops_before_the_disk_fills_and_resumes_after_space_is_freed(
    cli: Cli, small_disk: Callable[[str], Path], tmp_path: Path
) -> None:
    disk = small_disk("80m")
    corpus = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    checkpoint = tmp_path / "resume.json"
    store = ["--qdrant-path", str(disk / "qdrant"), "--collection", "c"]
    seed = write_jsonl(tmp_path / "seed.jsonl", DOCS[:2])
    for _ in range(2):  # created, then reopened once (the first reopen maps the id map's 4 MB page): that space is spent
        assert cli("ingest", "--input", str(seed), *store, "--no-progress").code == 0
    # a reserve that leaves ~32 KB to write: the first batches of 4 fit (~4 KB each), the corpus (~40 KB) does not
    reserve = (shutil.disk_usage(disk).free - 32 * 1024) / MB
    store += ["--qdrant-free-reserve-mb", f"{reserve:.3f}"]
    ingest = ["ingest", "--input", str(corpus), *store, "--checkpoint", str(checkpoint), "--ingest-batch-size", "4", "--no-progress"]
    stopped = cli(*ingest)
    assert stopped.code == 2 and "Traceback" not in stopped.err, stopped.err
    line = stopped.err.strip().splitlines()[-1]  # after it, at most the warning that the collection was not optimized
    assert line.startswith("error: ") and "upsert of 4 points refused" in line and f"--checkpoint {checkpoint}" in line
    done = json.loads(checkpoint.read_text(encoding="utf-8"))["records_done"]
    assert 0 < done < len(DOCS)

    small_disk("200m")  # space freed
    resumed = cli(*ingest, "--json")
    assert resumed.code == 0, resumed.err
    report = json.loads(resumed.out)
    assert report["skipped_by_resume"] == done and report["stored"] == len(DOCS)
    found = cli("search", *store, "-q", "Note 37: the centurion Cornelius number 37", "--top-k", "3", "--json")
    assert found.code == 0, found.err
    assert "d37" in [h["id"] for h in json.loads(found.out)["results"][0]["hits"]]

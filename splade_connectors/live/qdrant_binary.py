"""Finding the Qdrant binary, and unpacking an ``.xz`` archive of it once into the cache.

The binary comes from ``$QDRANT_BINARY`` (a plain executable or an ``.xz`` archive, or a folder holding
one), else ``../shared/qdrant/`` beside the clone (or the current directory). An archive is decompressed
once into ``${SPLADE_CONNECTORS_CACHE:-~/.cache/splade-connectors}/qdrant/<sha256 of the archive>/qdrant``
(atomically, under a file lock, so parallel sessions share it).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import lzma
import os
import shutil
import tempfile
from pathlib import Path

from splade_connectors.errors import ServerError
from splade_connectors.live.cache import cache_root
from splade_connectors.live.locks import file_lock

log = logging.getLogger(__name__)

BINARY_ENV = "QDRANT_BINARY"
ARCHIVE_PATTERN = "qdrant*.xz"
_REPO_ROOT = Path(__file__).resolve().parents[2]


class QdrantBinaryNotFound(ServerError, FileNotFoundError):
    """No Qdrant binary or archive where we looked (the message lists the places)."""


def _candidates(explicit: str | Path | None) -> list[Path]:
    found: list[Path] = []
    if explicit:
        found.append(Path(explicit).expanduser())
    if os.environ.get(BINARY_ENV):
        found.append(Path(os.environ[BINARY_ENV]).expanduser())
    found += [Path.cwd().parent / "shared" / "qdrant", Path.cwd() / "shared" / "qdrant", _REPO_ROOT.parent / "shared" / "qdrant"]
    return list(dict.fromkeys(found))


def _in_folder(folder: Path) -> Path | None:
    archives = sorted(folder.glob(ARCHIVE_PATTERN))
    if archives:
        return archives[-1]
    plain = folder / "qdrant"
    return plain if plain.is_file() else None


def find_binary_source(explicit: str | Path | None = None) -> Path:
    """The Qdrant executable or ``.xz`` archive to use: `explicit`, ``$QDRANT_BINARY``, else ``../shared/qdrant/``."""
    looked: list[str] = []
    for candidate in _candidates(explicit):
        looked.append(str(candidate))
        if candidate.is_dir():
            inside = _in_folder(candidate)
            if inside is not None:
                return inside
        elif candidate.is_file():
            return candidate
    raise QdrantBinaryNotFound(f"no Qdrant binary found (set {BINARY_ENV}); looked in: {', '.join(looked)}")


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file (the cache key of an unpacked archive)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_binary(source: str | Path | None = None) -> Path:
    """An executable Qdrant: a plain binary as is, an ``.xz`` archive decompressed once into the cache."""
    path = find_binary_source(source) if source is None or Path(source).is_dir() else Path(source).expanduser()
    if not path.is_file():
        raise QdrantBinaryNotFound(f"no Qdrant binary at {path}")
    if path.suffix != ".xz":
        if not os.access(path, os.X_OK):
            raise ServerError(f"{path} is not executable")
        return path
    dest = cache_root() / "qdrant" / sha256_of(path) / "qdrant"
    if dest.is_file() and os.access(dest, os.X_OK):
        return dest
    with file_lock(dest.parent / ".lock"):
        if not (dest.is_file() and os.access(dest, os.X_OK)):
            log.info("decompressing %s into %s", path, dest)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".qdrant-")
            try:
                with os.fdopen(fd, "wb") as out, lzma.open(path, "rb") as archive:
                    shutil.copyfileobj(archive, out, 1 << 20)
                os.chmod(tmp, 0o755)
                os.replace(tmp, dest)
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                if isinstance(exc, lzma.LZMAError):
                    raise ServerError(f"{path} is not a readable .xz archive: {exc}") from exc
                raise
    return dest

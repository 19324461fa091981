"""The runnable OpenSearch tree, assembled once from Maven Central into the cache.

No OpenSearch server ships on PyPI, npm or Debian, but Maven Central publishes the *integ-test*
distribution (``org.opensearch.distribution.integ-test-zip:opensearch``, a zip without a bundled JDK).
The 2.x zips have only the ``transport-netty4`` module, so ``rank_features`` is missing. We add it back: the
``mapper-extras`` module code is published as ``org.opensearch.plugin:mapper-extras-client`` (a jar);
that jar plus a ``plugin-descriptor.properties`` go into ``modules/mapper-extras/`` (newer zips, 3.8.0 here,
ship the module: then it is used as it is).

Cache layout (assembled once under a file lock, atomically: built in a temp dir, then renamed)::

    ${SPLADE_CONNECTORS_CACHE:-~/.cache/splade-connectors}/opensearch/<version>-<recipe hash>/

A running server never writes to it (each run has its own config/data/logs/tmp).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from splade_connectors.errors import ServerError
from splade_connectors.live.cache import cache_root
from splade_connectors.live.locks import file_lock
from splade_connectors.live.maven import Artifact, fetch_artifact

log = logging.getLogger(__name__)

# Bump when the assembly recipe changes, so old caches are not reused.
RECIPE_REVISION = 1
MARKER_FILE = ".assembled.json"
MODULE_NAME = "mapper-extras"
MODULE_PLUGIN_CLASSES = (
    "org.opensearch.index.mapper.MapperExtrasModulePlugin",  # newer releases
    "org.opensearch.index.mapper.MapperExtrasPlugin",  # 2.x
)


def distribution_artifact(version: str) -> Artifact:
    """The integ-test zip (server without JDK and without most modules)."""
    return Artifact("org.opensearch.distribution.integ-test-zip", "opensearch", version, "zip")


def module_artifact(version: str) -> Artifact:
    """The mapper-extras module jar (``rank_feature(s)``, ``scaled_float``...)."""
    return Artifact("org.opensearch.plugin", "mapper-extras-client", version, "jar")


def recipe(version: str) -> dict[str, object]:
    """Everything that determines the assembled tree (hashed into the cache key)."""
    return {
        "revision": RECIPE_REVISION,
        "distribution": distribution_artifact(version).coords,
        "module": module_artifact(version).coords,
        "module_dir": f"modules/{MODULE_NAME}",
        "plugin_classes": list(MODULE_PLUGIN_CLASSES),
    }


def recipe_hash(version: str) -> str:
    """Short stable hash of :func:`recipe`."""
    blob = json.dumps(recipe(version), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def distribution_dir(version: str) -> Path:
    """Where the assembled distribution for ``version`` lives in the cache."""
    return cache_root() / "opensearch" / f"{version}-{recipe_hash(version)}"


def _is_assembled(path: Path) -> bool:
    """True if ``path`` is a complete assembly (the marker is written last)."""
    return (path / MARKER_FILE).is_file() and (path / "bin" / "opensearch").is_file()


def _extract_zip(zip_path: Path, dest: Path) -> None:
    """Extract, dropping the top-level folder and keeping unix modes."""
    root = dest.resolve()
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            parts = Path(info.filename).parts[1:]
            if not parts:
                continue
            target = dest.joinpath(*parts)
            if not target.resolve().is_relative_to(root):
                raise ServerError(f"unsafe path in zip: {info.filename}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777
            target.chmod(mode or 0o644)


def _plugin_class(jar: Path) -> str:
    """The module's plugin class name, as found in its jar."""
    with zipfile.ZipFile(jar) as zf:
        names = set(zf.namelist())
    for cls in MODULE_PLUGIN_CLASSES:
        if cls.replace(".", "/") + ".class" in names:
            return cls
    raise ServerError(f"no known plugin class in {jar}: tried {MODULE_PLUGIN_CLASSES}")


def _read_properties(path: Path) -> dict[str, str]:
    """Minimal ``.properties`` reader (key=value lines, # comments)."""
    props: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def _module_java_version(home: Path) -> str:
    """``java.version`` declared by the modules shipped in the zip (11 for 2.x)."""
    for descriptor in sorted(home.glob("modules/*/plugin-descriptor.properties")):
        value = _read_properties(descriptor).get("java.version")
        if value:
            return value
    return "11"


def plugin_descriptor(version: str, classname: str, java_version: str) -> str:
    """``plugin-descriptor.properties`` for the mapper-extras module."""
    fields = {
        "description": "Adds advanced field mappers",
        "version": version,
        "name": MODULE_NAME,
        "classname": classname,
        "java.version": java_version,
        "opensearch.version": version,
        "custom.foldername": "",
        "extended.plugins": "",
        "has.native.controller": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in fields.items())


def _install_module(home: Path, jar: Path, version: str) -> None:
    """Create ``modules/mapper-extras/`` from the jar plus a descriptor, unless the zip ships the module.

    The 2.x integ-test zips lack it; newer ones (3.8.0 here) ship it, and a second copy of its classes
    would stop the server at startup ("jar hell").
    """
    module_dir = home / "modules" / MODULE_NAME
    if (module_dir / "plugin-descriptor.properties").is_file():
        log.info("the OpenSearch %s zip ships %s: using it", version, MODULE_NAME)
        return
    module_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(jar, module_dir / f"{MODULE_NAME}-{version}.jar")
    text = plugin_descriptor(version, _plugin_class(jar), _module_java_version(home))
    (module_dir / "plugin-descriptor.properties").write_text(text, encoding="utf-8")


def _make_world_readable(root: Path) -> None:
    """dirs 755 and files o+r, so an unprivileged user can run the tree."""
    root.chmod(0o755)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            (Path(dirpath) / name).chmod(0o755)
        for name in filenames:
            path = Path(dirpath) / name
            path.chmod(path.stat().st_mode | 0o444)


def _assemble(version: str, dest: Path) -> None:
    """Download both artifacts and build the runnable tree in ``dest``."""
    downloads = Path(tempfile.mkdtemp(prefix=".downloads-", dir=dest.parent))
    try:
        zip_path = fetch_artifact(distribution_artifact(version), downloads)
        jar = fetch_artifact(module_artifact(version), downloads)
        _extract_zip(zip_path, dest)
        _install_module(dest, jar, version)
    finally:
        shutil.rmtree(downloads, ignore_errors=True)
    _make_world_readable(dest)
    marker = {"recipe": recipe(version), "assembled_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (dest / MARKER_FILE).write_text(json.dumps(marker, indent=2), encoding="utf-8")


def ensure_distribution(version: str) -> Path:
    """The assembled distribution dir of ``version``, downloaded and assembled the first time."""
    target = distribution_dir(version)
    if _is_assembled(target):
        return target
    with file_lock(target.parent / f".{target.name}.lock"):
        if _is_assembled(target):
            return target
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            _assemble(version, tmp)
            if target.exists():  # stale, incomplete leftover from an old layout
                shutil.rmtree(target)
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("assembled OpenSearch %s in %s (%.1fs)", version, target, time.monotonic() - started)
    return target

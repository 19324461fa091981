"""Maven artifacts: coordinates, and fetching one over HTTPS (SHA-1 checked) or, failing that, with ``mvn``.

``SPLADE_CONNECTORS_MAVEN_REPO`` sets the repository base URL (default: Maven Central). When plain HTTPS
fails, ``mvn dependency:copy`` is tried, so ``~/.m2/settings.xml`` mirrors and proxies apply.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from splade_connectors.errors import ServerError

log = logging.getLogger(__name__)

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
REPO_ENV = "SPLADE_CONNECTORS_MAVEN_REPO"


@dataclass(frozen=True)
class Artifact:
    """A Maven artifact coordinate."""

    group: str
    name: str
    version: str
    ext: str

    @property
    def coords(self) -> str:
        """``group:artifact:version:ext`` as ``mvn dependency:copy`` wants it."""
        return f"{self.group}:{self.name}:{self.version}:{self.ext}"

    @property
    def filename(self) -> str:
        """File name in the repository (and after ``mvn dependency:copy``)."""
        return f"{self.name}-{self.version}.{self.ext}"

    def url(self, repo: str) -> str:
        """Download URL under a Maven repository base URL."""
        path = "/".join([*self.group.split("."), self.name, self.version, self.filename])
        return f"{repo.rstrip('/')}/{path}"


def maven_repo() -> str:
    """Maven repository base URL (env ``SPLADE_CONNECTORS_MAVEN_REPO``, default Maven Central)."""
    return os.environ.get(REPO_ENV, MAVEN_CENTRAL)


def _download_https(artifact: Artifact, out_dir: Path) -> Path:
    """Download over HTTPS and verify the repository's SHA-1."""
    url = artifact.url(maven_repo())
    target = out_dir / artifact.filename
    part = target.with_suffix(target.suffix + ".part")
    digest = hashlib.sha1()
    with urllib.request.urlopen(url, timeout=60) as resp, part.open("wb") as fh:
        while chunk := resp.read(1 << 20):
            digest.update(chunk)
            fh.write(chunk)
    with urllib.request.urlopen(url + ".sha1", timeout=30) as resp:
        expected = resp.read().decode("ascii", "replace").split()[0].strip().lower()
    if digest.hexdigest() != expected:
        part.unlink(missing_ok=True)
        raise ServerError(f"SHA-1 mismatch for {url}: got {digest.hexdigest()}, expected {expected}")
    part.rename(target)
    return target


def _download_mvn(artifact: Artifact, out_dir: Path) -> Path:
    """Download with ``mvn dependency:copy`` (honours ~/.m2/settings.xml)."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServerError("mvn is not on PATH")
    cmd = [mvn, "-q", "-B", "-Dstyle.color=never", "dependency:copy", f"-Dartifact={artifact.coords}", f"-DoutputDirectory={out_dir}"]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServerError(f"mvn dependency:copy {artifact.coords} failed: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise ServerError(f"mvn dependency:copy {artifact.coords} failed ({result.returncode}):\n{tail}")
    target = out_dir / artifact.filename
    if not target.is_file():
        raise ServerError(f"mvn did not produce {target}")
    return target


def fetch_artifact(artifact: Artifact, out_dir: Path) -> Path:
    """Fetch one artifact into ``out_dir``: plain HTTPS first, then the Maven CLI; `ServerError` if both fail."""
    started = time.monotonic()
    try:
        path = _download_https(artifact, out_dir)
    except (OSError, ServerError, urllib.error.URLError) as https_error:
        log.warning("HTTPS download of %s failed (%s); trying mvn", artifact.coords, https_error)
        try:
            path = _download_mvn(artifact, out_dir)
        except ServerError as mvn_error:
            raise ServerError(f"cannot fetch {artifact.coords}: over HTTPS: {https_error}; with mvn: {mvn_error}") from mvn_error
    log.info("fetched %s (%.1f MB) in %.1fs", artifact.coords, path.stat().st_size / 1e6, time.monotonic() - started)
    return path

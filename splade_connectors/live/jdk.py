"""Picking a JDK for OpenSearch: ``OPENSEARCH_JAVA_HOME``, else a compatible JDK under ``/usr/lib/jvm``, else PATH.

OpenSearch 2.x runs on JDK 11-23 (17 preferred; JDK 24 removed the Security Manager it needs); 3.x needs 21+.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from splade_connectors.errors import ServerError

log = logging.getLogger(__name__)

JVM_ROOT = Path("/usr/lib/jvm")
JAVA_HOME_ENV = "OPENSEARCH_JAVA_HOME"


def _major_of(version_text: str) -> int:
    """Java major from a version string (``1.8.0_x`` -> 8, ``17.0.15`` -> 17)."""
    parts = re.findall(r"\d+", version_text)
    if not parts:
        raise ServerError(f"not a java version: {version_text!r}")
    major = int(parts[0])
    return int(parts[1]) if major == 1 and len(parts) > 1 else major


def java_major(java_home: Path) -> int:
    """Major version of a JDK: its ``release`` file, else ``java -version``; `ServerError` if neither tells."""
    release = java_home / "release"
    if release.is_file():
        match = re.search(r'^JAVA_VERSION="([^"]+)"', release.read_text(errors="replace"), re.M)
        if match:
            return _major_of(match.group(1))
    try:
        out = subprocess.run(
            [str(java_home / "bin" / "java"), "-version"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServerError(f"cannot run java -version of {java_home}: {exc}") from exc
    match = re.search(r'version "([^"]+)"', out.stderr + out.stdout)
    if not match:
        raise ServerError(f"cannot parse java -version of {java_home}")
    return _major_of(match.group(1))


def supported_java(version: str) -> tuple[int, int, int]:
    """(min, max, preferred) JDK major for an OpenSearch version."""
    if int(version.split(".")[0]) >= 3:
        return 21, 99, 21
    return 11, 23, 17  # 2.x needs the Security Manager, removed in JDK 24


def _candidate_java_homes() -> list[Path]:
    """Distinct JDK homes under /usr/lib/jvm."""
    seen: set[Path] = set()
    homes: list[Path] = []
    if JVM_ROOT.is_dir():
        for entry in sorted(JVM_ROOT.iterdir()):
            real = entry.resolve()
            if real not in seen and (real / "bin" / "java").is_file():
                seen.add(real)
                homes.append(real)
    return homes


def _path_java_home() -> Path | None:
    """JDK home of ``java`` on PATH, if any."""
    java = shutil.which("java")
    return Path(java).resolve().parent.parent if java else None


def find_java_home(version: str) -> Path:
    """The JDK to run OpenSearch ``version`` with: ``OPENSEARCH_JAVA_HOME``, a compatible /usr/lib/jvm JDK, PATH."""
    explicit = os.environ.get(JAVA_HOME_ENV)
    if explicit:
        return Path(explicit)
    low, high, preferred = supported_java(version)
    compatible: list[tuple[int, Path]] = []
    for home in _candidate_java_homes():
        with contextlib.suppress(OSError, ServerError):
            major = java_major(home)
            if low <= major <= high:
                compatible.append((major, home))
    if compatible:
        compatible.sort(key=lambda item: (item[0] != preferred, -item[0]))
        return compatible[0][1]
    fallback = _path_java_home()
    if fallback is None:
        raise ServerError(f"no JDK found for OpenSearch {version} (needs {low}-{high}); set {JAVA_HOME_ENV}")
    log.warning("no JDK %d-%d under %s; using %s from PATH", low, high, JVM_ROOT, fallback)
    return fallback

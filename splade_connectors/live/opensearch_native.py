"""Run a real single-node OpenSearch without Docker, assembled from Maven Central.

No OpenSearch server ships on PyPI, npm or Debian, but Maven Central publishes the
*integ-test* distribution (``org.opensearch.distribution.integ-test-zip:opensearch``,
a zip without a bundled JDK). That zip has only the ``transport-netty4`` module, so
``rank_features`` is missing. This module adds it back: the ``mapper-extras`` module
code is published as ``org.opensearch.plugin:mapper-extras-client`` (a jar); we put
that jar plus a ``plugin-descriptor.properties`` into ``modules/mapper-extras/``.

Cache layout (assembled once, atomically: built in a temp dir, then renamed)::

    ${SPLADE_CONNECTORS_CACHE:-~/.cache/splade-connectors}/opensearch/<version>-<recipe hash>/

Each run gets a fresh temp dir (``config/``, ``data/``, ``logs/``, ``tmp/``) that is
removed on stop; the cache is never written by a running server.

Java: ``OPENSEARCH_JAVA_HOME`` if set, else a compatible JDK under ``/usr/lib/jvm``
(OpenSearch 2.x: JDK 11-23, 17 preferred; 3.x: JDK 21+), else ``java`` on ``PATH``.
OpenSearch 2.x cannot run on JDK 24+ (the Security Manager is gone there).

Root: OpenSearch refuses to run as root (there is no override in 2.x). When the
caller is root (CI containers), the JVM runs as the system user ``splade-opensearch``
(override with ``SPLADE_CONNECTORS_OPENSEARCH_USER``), created with ``useradd`` on
first use, via ``setpriv`` (fallback ``runuser``). Because the cache usually lives
under ``/root`` (mode 700), the distribution is hard-linked (or copied) into the
run dir for that user; only the run dir's config/data/logs/tmp are chowned to it.

Python API::

    from splade_connectors.live.opensearch_native import NativeOpenSearch
    with NativeOpenSearch(version="2.19.3") as server:
        print(server.url, server.version, server.startup_seconds)

CLI::

    python -m splade_connectors.live.opensearch_native fetch [--version V]
    python -m splade_connectors.live.opensearch_native run [--version V] [--heap 512m]
    python -m splade_connectors.live.opensearch_native start --pidfile os.json
    python -m splade_connectors.live.opensearch_native stop --pidfile os.json

Environment: ``SPLADE_CONNECTORS_CACHE`` (cache root), ``SPLADE_CONNECTORS_MAVEN_REPO``
(Maven repo base URL, default Maven Central; falls back to ``mvn dependency:copy``
when plain HTTPS fails, so ``settings.xml`` mirrors/proxies apply),
``OPENSEARCH_JAVA_HOME``, ``SPLADE_CONNECTORS_OPENSEARCH_USER``, ``SPLADE_CONNECTORS_OPENSEARCH_HEAP``
(JVM heap, default 512m: enough for the tests; ``heap_for_documents(n)`` sizes it for larger indices).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from splade_connectors.live.locks import file_lock

log = logging.getLogger(__name__)

DEFAULT_VERSION = "2.19.3"
DEFAULT_HEAP = "512m"  # fits the test suite's indices (a few thousand documents each)
HEAP_ENV = "SPLADE_CONNECTORS_OPENSEARCH_HEAP"
_HEAP_RE = re.compile(r"^[1-9][0-9]*[kKmMgG]$")
DEFAULT_RUN_AS_USER = "splade-opensearch"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
JVM_ROOT = Path("/usr/lib/jvm")
# Bump when the assembly recipe changes, so old caches are not reused.
RECIPE_REVISION = 1
MARKER_FILE = ".assembled.json"
MODULE_NAME = "mapper-extras"
MODULE_PLUGIN_CLASSES = (
    "org.opensearch.index.mapper.MapperExtrasModulePlugin",  # newer releases
    "org.opensearch.index.mapper.MapperExtrasPlugin",  # 2.x
)


# ---------------------------------------------------------------- artifacts


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


def distribution_artifact(version: str) -> Artifact:
    """The integ-test zip (server without JDK and without most modules)."""
    return Artifact("org.opensearch.distribution.integ-test-zip", "opensearch", version, "zip")


def module_artifact(version: str) -> Artifact:
    """The mapper-extras module jar (``rank_feature(s)``, ``scaled_float``...)."""
    return Artifact("org.opensearch.plugin", "mapper-extras-client", version, "jar")


def maven_repo() -> str:
    """Maven repository base URL (env ``SPLADE_CONNECTORS_MAVEN_REPO``)."""
    return os.environ.get("SPLADE_CONNECTORS_MAVEN_REPO", MAVEN_CENTRAL)


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
        raise ValueError(f"SHA-1 mismatch for {url}: got {digest.hexdigest()}, expected {expected}")
    part.rename(target)
    return target


def _download_mvn(artifact: Artifact, out_dir: Path) -> Path:
    """Download with ``mvn dependency:copy`` (honours ~/.m2/settings.xml)."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("mvn is not on PATH")
    cmd = [
        mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        "dependency:copy",
        f"-Dartifact={artifact.coords}",
        f"-DoutputDirectory={out_dir}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise RuntimeError(f"mvn dependency:copy {artifact.coords} failed ({result.returncode}):\n{tail}")
    target = out_dir / artifact.filename
    if not target.is_file():
        raise RuntimeError(f"mvn did not produce {target}")
    return target


def fetch_artifact(artifact: Artifact, out_dir: Path) -> Path:
    """Fetch one artifact: plain HTTPS first, then the Maven CLI."""
    started = time.monotonic()
    try:
        path = _download_https(artifact, out_dir)
    except (OSError, ValueError, urllib.error.URLError) as exc:
        log.warning("HTTPS download of %s failed (%s); trying mvn", artifact.coords, exc)
        path = _download_mvn(artifact, out_dir)
    log.info("fetched %s (%.1f MB) in %.1fs", artifact.coords, path.stat().st_size / 1e6, time.monotonic() - started)
    return path


# ---------------------------------------------------------------- heap


def default_heap() -> str:
    """The heap a server gets unless told otherwise: ``$SPLADE_CONNECTORS_OPENSEARCH_HEAP`` or 512m."""
    return os.environ.get(HEAP_ENV) or DEFAULT_HEAP


def heap_for_documents(documents: int) -> str:
    """A heap that fits a single-node index of this many SPLADE documents (~300 terms + text each).

    512m holds the test suite's indices; for a million documents (`bench/opensearch.py scale`), 2g
    gives the indexing buffer (10% of the heap) room for larger segments, hence fewer merges.
    Lucene keeps postings and stored fields off-heap (page cache): the rest of the RAM serves queries.
    """
    if documents <= 50_000:
        return "512m"
    if documents <= 250_000:
        return "1g"
    return "2g"


def check_heap(heap: str) -> str:
    """``heap`` if it is a JVM size such as 512m or 2g, else ValueError."""
    if not _HEAP_RE.match(heap):
        raise ValueError(f"heap must be a JVM size such as 512m or 2g, got {heap!r}")
    return heap


# ---------------------------------------------------------------- assembly


def cache_root() -> Path:
    """Cache root: ``$SPLADE_CONNECTORS_CACHE`` or ``~/.cache/splade-connectors``."""
    override = os.environ.get("SPLADE_CONNECTORS_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "splade-connectors"


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
                raise ValueError(f"unsafe path in zip: {info.filename}")
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
    raise RuntimeError(f"no known plugin class in {jar}: tried {MODULE_PLUGIN_CLASSES}")


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
    """Create ``modules/mapper-extras/`` from the jar plus a descriptor."""
    module_dir = home / "modules" / MODULE_NAME
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


def ensure_distribution(version: str = DEFAULT_VERSION) -> Path:
    """Return the assembled distribution dir, downloading/assembling it once."""
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


# ---------------------------------------------------------------- java


def _major_of(version_text: str) -> int:
    """Java major from a version string (``1.8.0_x`` -> 8, ``17.0.15`` -> 17)."""
    parts = re.findall(r"\d+", version_text)
    if not parts:
        raise ValueError(f"not a java version: {version_text!r}")
    major = int(parts[0])
    return int(parts[1]) if major == 1 and len(parts) > 1 else major


def java_major(java_home: Path) -> int:
    """Major version of a JDK: its ``release`` file, else ``java -version``."""
    release = java_home / "release"
    if release.is_file():
        match = re.search(r'^JAVA_VERSION="([^"]+)"', release.read_text(errors="replace"), re.M)
        if match:
            return _major_of(match.group(1))
    out = subprocess.run(
        [str(java_home / "bin" / "java"), "-version"], capture_output=True, text=True, timeout=30, check=True
    )
    match = re.search(r'version "([^"]+)"', out.stderr + out.stdout)
    if not match:
        raise ValueError(f"cannot parse java -version of {java_home}")
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


def find_java_home(version: str = DEFAULT_VERSION) -> Path:
    """Pick the JDK: ``OPENSEARCH_JAVA_HOME``, a compatible /usr/lib/jvm JDK, PATH."""
    explicit = os.environ.get("OPENSEARCH_JAVA_HOME")
    if explicit:
        return Path(explicit)
    low, high, preferred = supported_java(version)
    compatible: list[tuple[int, Path]] = []
    for home in _candidate_java_homes():
        with contextlib.suppress(OSError, ValueError, subprocess.SubprocessError):
            major = java_major(home)
            if low <= major <= high:
                compatible.append((major, home))
    if compatible:
        compatible.sort(key=lambda item: (item[0] != preferred, -item[0]))
        return compatible[0][1]
    fallback = _path_java_home()
    if fallback is None:
        raise RuntimeError(f"no JDK found for OpenSearch {version} (needs {low}-{high}); set OPENSEARCH_JAVA_HOME")
    log.warning("no JDK %d-%d under %s; using %s from PATH", low, high, JVM_ROOT, fallback)
    return fallback


# ---------------------------------------------------------------- root handling


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """Return the passwd entry of ``name``, creating a system user if needed."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    cmd = [
        useradd,
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        name,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 9):  # 9: already exists (race with another process)
        raise RuntimeError(f"useradd {name} failed: {result.stderr.strip()}")
    log.info("created system user %s to run OpenSearch (it refuses to run as root)", name)
    return pwd.getpwnam(name)


def run_as_user() -> pwd.struct_passwd | None:
    """The unprivileged user to run the JVM as, or None when not root."""
    if os.geteuid() != 0:
        return None
    return _ensure_system_user(os.environ.get("SPLADE_CONNECTORS_OPENSEARCH_USER", DEFAULT_RUN_AS_USER))


def launch_prefix(user: pwd.struct_passwd | None, tie_to_parent: bool) -> list[str]:
    """Command prefix that drops root and/or ties the JVM's life to this thread."""
    setpriv = shutil.which("setpriv")
    if setpriv:
        prefix = [setpriv]
        if user is not None:
            prefix += [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        if tie_to_parent:
            prefix.append("--pdeathsig=TERM")
        return [*prefix, "--"] if len(prefix) > 1 else []
    if user is None:
        return []
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", user.pw_name, "--"]
    raise RuntimeError("running as root needs setpriv or runuser (util-linux) to drop privileges")


def _chown_tree(root: Path, user: pwd.struct_passwd) -> None:
    """Recursively chown ``root`` to ``user``."""
    os.chown(root, user.pw_uid, user.pw_gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.chown(Path(dirpath) / name, user.pw_uid, user.pw_gid, follow_symlinks=False)


def _link_tree(src: Path, dest: Path) -> None:
    """Hard-link a tree (copy when linking is impossible, e.g. across filesystems)."""
    try:
        shutil.copytree(src, dest, copy_function=os.link)
    except (OSError, shutil.Error):
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src, dest)


# ---------------------------------------------------------------- server


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _yaml_scalar(value: object) -> str:
    """JSON scalars are valid YAML scalars."""
    return json.dumps(value)


def node_settings(run_dir: Path, host: str, http_port: int, transport_port: int) -> dict[str, object]:
    """``opensearch.yml`` for a throwaway single-node test server."""
    return {
        "cluster.name": "splade-connectors-native",
        "node.name": "native-1",
        "path.data": str(run_dir / "data"),
        "path.logs": str(run_dir / "logs"),
        "network.host": host,
        "http.port": http_port,
        "transport.port": transport_port,
        "discovery.type": "single-node",  # also skips the production bootstrap checks
        "bootstrap.memory_lock": False,
        "cluster.routing.allocation.disk.threshold_enabled": False,  # no read-only indices on full CI disks
    }


def _write_config(home: Path, run_dir: Path, settings: Mapping[str, object], heap: str) -> Path:
    """Per-run config dir: the distribution's files plus our yml and heap options."""
    conf = run_dir / "config"
    shutil.copytree(home / "config", conf)
    _absolutize_jvm_paths(conf / "jvm.options", run_dir)
    yml = "".join(f"{key}: {_yaml_scalar(value)}\n" for key, value in settings.items())
    (conf / "opensearch.yml").write_text(yml, encoding="utf-8")
    options = conf / "jvm.options.d"
    options.mkdir(exist_ok=True)
    jvm = [f"-Xms{heap}", f"-Xmx{heap}", "-XX:-HeapDumpOnOutOfMemoryError", "-XX:-UsePerfData"]
    (options / "splade-connectors.options").write_text("\n".join(jvm) + "\n", encoding="utf-8")
    return conf


def _absolutize_jvm_paths(jvm_options: Path, run_dir: Path) -> None:
    """Point the relative ``logs/``, ``data`` paths of jvm.options into the run dir.

    ``bin/opensearch`` runs the JVM with cwd = OPENSEARCH_HOME, so the stock
    relative paths (gc log, error file, heap dumps) would land in the cache.
    """
    text = jvm_options.read_text(encoding="utf-8")
    text = re.sub(r"(file=|ErrorFile=)logs/", lambda m: f"{m.group(1)}{run_dir / 'logs'}/", text)
    text = re.sub(r"HeapDumpPath=data\b", f"HeapDumpPath={run_dir / 'data'}", text)
    jvm_options.write_text(text, encoding="utf-8")


def _server_env(java_home: Path, home: Path, conf: Path, tmp: Path) -> dict[str, str]:
    """Environment for ``bin/opensearch``; inherited JVM options are dropped."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"OPENSEARCH_JAVA_OPTS", "ES_JAVA_OPTS", "JAVA_TOOL_OPTIONS"}
    }
    env.update(
        JAVA_HOME=str(java_home),
        OPENSEARCH_JAVA_HOME=str(java_home),
        OPENSEARCH_HOME=str(home),
        OPENSEARCH_PATH_CONF=str(conf),
        OPENSEARCH_TMPDIR=str(tmp),  # also saves one JVM launch in bin/opensearch
    )
    return env


def _http_json(url: str, timeout: float) -> dict[str, object]:
    """GET ``url`` and decode JSON."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data = json.loads(resp.read().decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"unexpected JSON from {url}")
    return data


def _health_status(url: str) -> str | None:
    """Cluster health status, or None while the node is not answering."""
    try:
        return str(_http_json(f"{url}/_cluster/health?wait_for_status=yellow&timeout=1s", timeout=5)["status"])
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        return None


def _tail(path: Path, lines: int = 40) -> str:
    """Last lines of a text file (empty if missing)."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid``, ignoring gone groups."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class NativeOpenSearch:
    """A throwaway single-node OpenSearch on 127.0.0.1 (context manager)."""

    def __init__(
        self,
        version: str = DEFAULT_VERSION,
        *,
        heap: str | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 180.0,
        extra_settings: Mapping[str, object] | None = None,
        java_home: Path | None = None,
        tie_to_parent: bool = True,
    ) -> None:
        self.version = version
        self.heap = check_heap(heap or default_heap())
        self.host = host
        self.startup_timeout = startup_timeout
        self.extra_settings = dict(extra_settings or {})
        fixed = {"http.port", "transport.port", "network.host"} & set(self.extra_settings)
        if fixed:
            raise ValueError(f"extra_settings cannot override {sorted(fixed)}: ports and host are chosen per start")
        self.java_home = java_home
        self.tie_to_parent = tie_to_parent
        self.url: str | None = None
        self.startup_seconds: float | None = None
        self.run_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._proc_rc: int | None = None

    @property
    def pid(self) -> int | None:
        """PID (and process group id) of the JVM, while running."""
        return self._proc.pid if self._proc else None

    def __enter__(self) -> NativeOpenSearch:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> str:
        """Start and wait until healthy; returns the base URL."""
        if self._proc is not None:
            raise RuntimeError("already started")
        dist = ensure_distribution(self.version)
        java_home = self.java_home or find_java_home(self.version)
        log.info("starting OpenSearch %s with JDK %s (major %s)", self.version, java_home, java_major(java_home))
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(dist, java_home)
            except _PortClash:
                log.warning("port clash on attempt %d, retrying with new ports", attempt)
        raise RuntimeError(f"could not bind OpenSearch ports after {attempts} attempts")

    def _start_once(self, dist: Path, java_home: Path) -> str:
        """One launch attempt on freshly picked ports."""
        started = time.monotonic()
        user = run_as_user()
        self.run_dir = run_dir = Path(tempfile.mkdtemp(prefix="splade-opensearch-"))
        home = self._prepare_home(dist, run_dir, user)
        http_port, transport_port = free_port(self.host), free_port(self.host)
        settings = {**node_settings(run_dir, self.host, http_port, transport_port), **self.extra_settings}
        conf = _write_config(home, run_dir, settings, self.heap)
        for sub in ("data", "logs", "tmp"):
            (run_dir / sub).mkdir()
        if user is not None:
            for sub in ("config", "data", "logs", "tmp"):
                _chown_tree(run_dir / sub, user)
        self.url = f"http://{self.host}:{http_port}"
        self._launch(home, conf, java_home, user)
        atexit.register(self.stop)
        self._wait_healthy(started)
        return self.url

    def _prepare_home(self, dist: Path, run_dir: Path, user: pwd.struct_passwd | None) -> Path:
        """Home dir to run from: the cache itself, or a linked copy for a dropped user."""
        if user is None:
            return dist
        run_dir.chmod(0o755)
        home = run_dir / "home"
        _link_tree(dist, home)
        return home

    def _launch(self, home: Path, conf: Path, java_home: Path, user: pwd.struct_passwd | None) -> None:
        """Spawn ``bin/opensearch`` in its own session, output to logs/console.log."""
        assert self.run_dir is not None
        tie = self.tie_to_parent and threading.current_thread() is threading.main_thread()
        cmd = [*launch_prefix(user, tie), str(home / "bin" / "opensearch")]
        env = _server_env(java_home, home, conf, self.run_dir / "tmp")
        with (self.run_dir / "logs" / "console.log").open("wb") as console:
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.run_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        log.debug("spawned pid %d: %s", self._proc.pid, cmd)

    def _wait_healthy(self, started: float) -> None:
        """Poll cluster health; on death or timeout stop and raise with the log tail."""
        assert self._proc is not None and self.url is not None and self.run_dir is not None
        console = self.run_dir / "logs" / "console.log"
        deadline = started + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = _tail(console)
                self.stop()
                if "BindTransportException" in tail or "BindHttpException" in tail:
                    raise _PortClash()
                raise RuntimeError(f"OpenSearch exited with {self._proc_rc}; console log tail:\n{tail}")
            if _health_status(self.url) in ("green", "yellow"):
                self.startup_seconds = time.monotonic() - started
                self._check_version()
                log.info("OpenSearch %s healthy at %s after %.1fs", self.version, self.url, self.startup_seconds)
                return
            time.sleep(0.25)
        tail = _tail(console)
        self.stop()
        raise TimeoutError(f"OpenSearch not healthy after {self.startup_timeout:.0f}s; console log tail:\n{tail}")

    def _check_version(self) -> None:
        """Warn if the server reports another version than requested."""
        assert self.url is not None
        version = _http_json(self.url, timeout=10).get("version")
        reported = version.get("number") if isinstance(version, dict) else None
        if reported != self.version:
            log.warning("requested OpenSearch %s but server reports %s", self.version, reported)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the JVM (TERM, then KILL the group after ``timeout``) and delete the run dir."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("OpenSearch pid %d ignored SIGTERM for %.0fs; killing", proc.pid, timeout)
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
            _signal_group(proc.pid, signal.SIGKILL)  # stray children of the group, if any
            self._proc_rc = proc.returncode
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None
        self.url = None

    def detach(self) -> dict[str, object]:
        """Forget the server without stopping it; returns the state ``stop_detached`` needs."""
        if self._proc is None:
            raise RuntimeError("not started")
        state: dict[str, object] = {
            "pid": self._proc.pid,
            "url": self.url,
            "version": self.version,
            "run_dir": str(self.run_dir),
            "startup_seconds": self.startup_seconds,
        }
        atexit.unregister(self.stop)
        self._proc = None
        self.run_dir = None
        return state


class _PortClash(Exception):
    """The node could not bind its (pre-picked) ports."""


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` exists (zombies of other parents count as gone soon)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_opensearch(pid: int) -> bool:
    """True if ``pid`` is a live OpenSearch JVM (guards against reused pids)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"org.opensearch.bootstrap.OpenSearch" in cmdline


def stop_detached(state: Mapping[str, object], timeout: float = 30.0) -> None:
    """Stop a server started by ``start --pidfile`` and delete its run dir."""
    pid = int(str(state["pid"]))
    if not _is_opensearch(pid):
        log.warning("pid %d is not an OpenSearch JVM (stale pidfile?); not signalling it", pid)
    else:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _is_opensearch(pid):
        _signal_group(pid, signal.SIGKILL)
    run_dir = state.get("run_dir")
    if run_dir:
        shutil.rmtree(str(run_dir), ignore_errors=True)


# ---------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    """Argument parser of the CLI."""
    parser = argparse.ArgumentParser(
        prog="python -m splade_connectors.live.opensearch_native",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [
        ("fetch", "download and assemble into the cache, print its path"),
        ("run", "start, print URL, block until Ctrl-C/SIGTERM, stop"),
        ("start", "start in the background and write --pidfile"),
        ("stop", "stop the server of --pidfile"),
    ]:
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--version", default=os.environ.get("SPLADE_CONNECTORS_OPENSEARCH_VERSION", DEFAULT_VERSION))
        cmd.add_argument("--heap", default=None, help=f"JVM heap (default: ${HEAP_ENV}, else {DEFAULT_HEAP})")
        cmd.add_argument("--pidfile", type=Path, required=name in ("start", "stop"))
    return parser


def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def _cmd_run(args: argparse.Namespace) -> int:
    """``run``: foreground server."""
    with NativeOpenSearch(args.version, heap=args.heap) as server:
        print(
            f"OpenSearch {server.version} at {server.url} (healthy after {server.startup_seconds:.1f}s); Ctrl-C stops",
            flush=True,
        )
        _wait_for_signal()
    print("stopped", flush=True)
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    """``start --pidfile``: background server that outlives this process."""
    server = NativeOpenSearch(args.version, heap=args.heap, tie_to_parent=False)
    server.start()
    state = server.detach()
    args.pidfile.write_text(json.dumps(state, indent=2), encoding="utf-8")
    print(f"OpenSearch {state['version']} at {state['url']} (pid {state['pid']}, pidfile {args.pidfile})")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    """``stop --pidfile``."""
    if not args.pidfile.is_file():
        print(f"no pidfile {args.pidfile}", file=sys.stderr)
        return 1
    stop_detached(json.loads(args.pidfile.read_text(encoding="utf-8")))
    args.pidfile.unlink()
    print("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "fetch":
        print(ensure_distribution(args.version))
        return 0
    handlers = {"run": _cmd_run, "start": _cmd_start, "stop": _cmd_stop}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

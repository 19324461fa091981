"""Pytest plugin: session-scoped live Qdrant / OpenSearch stores.

Load with ``pytest_plugins = ["tests.live_stores"]`` (or ``-p tests.live_stores``).

OpenSearch (``opensearch_store``), first that works:
  1. ``OPENSEARCH_URL`` (+ ``OPENSEARCH_USERNAME``/``OPENSEARCH_PASSWORD``,
     ``OPENSEARCH_VERIFY_CERTS=0`` for self-signed certs). Set but unreachable = error.
  2. testcontainers ``OpenSearchContainer`` when a Docker engine answers a ping.
  3. the native server of :mod:`splade_connectors.live.opensearch_native`
     (disable with ``SPLADE_CONNECTORS_NATIVE_OPENSEARCH=0``).
  Otherwise skip, or fail when ``SPLADE_CONNECTORS_REQUIRE_OPENSEARCH=1`` (CI).

Qdrant server (``qdrant_server_store``), first that works:
  1. ``QDRANT_URL`` (+ ``QDRANT_API_KEY``, ``QDRANT_GRPC_PORT``). Set but unreachable = error.
  2. testcontainers ``QdrantContainer`` (``QDRANT_IMAGE``) when a Docker engine answers.
  3. the native server binary (:mod:`splade_connectors.live.qdrant_server`): ``QDRANT_BINARY``,
     else ``../shared/qdrant/`` beside the clone (disable with ``SPLADE_CONNECTORS_NATIVE_QDRANT=0``).
  Otherwise skip, or fail when ``SPLADE_CONNECTORS_REQUIRE_QDRANT_SERVER=1`` (CI).
``qdrant_store`` is that server, else the embedded engine (``source="embedded"``, ``url=None``).
``qdrant_binary`` is the native binary itself, for tests that kill and restart their own server
(skips/fails like the server when there is none). ``qdrant_cluster`` is a 3-node Qdrant cluster from that
binary (`splade_connectors.live.qdrant_cluster`), one per test module; mark its tests ``cluster``.
``opensearch_cluster`` is a 3-node native OpenSearch cluster (`splade_connectors.live.opensearch_cluster`,
``SPLADE_CONNECTORS_OPENSEARCH_VERSION``), one per test module; mark its tests ``cluster`` too. It skips when
native OpenSearch is disabled or cannot start (fails with ``SPLADE_CONNECTORS_REQUIRE_OPENSEARCH=1``).

Other knobs: ``SPLADE_CONNECTORS_NO_DOCKER=1`` (never probe Docker),
``SPLADE_CONNECTORS_OPENSEARCH_VERSION`` (native version and image tag).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import importlib.metadata
import json
import logging
import os
import ssl
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import pytest

from splade_connectors.errors import ServerError
from splade_connectors.live.opensearch_cluster import OpenSearchCluster
from splade_connectors.live.opensearch_native import DEFAULT_VERSION, NativeOpenSearch
from splade_connectors.live.qdrant_cluster import QdrantCluster
from splade_connectors.live.qdrant_server import QdrantBinaryNotFound, QdrantServer, ensure_binary, find_binary_source

log = logging.getLogger(__name__)

OPENSEARCH_VERSION = os.environ.get("SPLADE_CONNECTORS_OPENSEARCH_VERSION", DEFAULT_VERSION)
OPENSEARCH_IMAGE = f"opensearchproject/opensearch:{OPENSEARCH_VERSION}"
# Same version as the native binary in ../shared/qdrant and docker-compose.test.yml.
QDRANT_VERSION = "1.18.3"
QDRANT_IMAGE = f"qdrant/qdrant:v{QDRANT_VERSION}"
DOCKER_PING_TIMEOUT = 3

Source = Literal["env", "testcontainers", "native", "embedded"]


@dataclass(frozen=True)
class LiveStore:
    """Where a live store is and how to talk to it."""

    kind: Literal["opensearch", "qdrant"]
    url: str | None
    source: Source
    version: str | None = None
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    verify_certs: bool = True
    grpc_port: int | None = None

    def describe(self) -> str:
        """One-line human description."""
        return f"{self.kind} {self.version or '?'} ({self.source}) at {self.url or 'in-process'}"


class StoreUnavailable(Exception):
    """A source could not provide the store; the message says why."""


_USED: dict[str, LiveStore] = {}


# ---------------------------------------------------------------- helpers


def _env_flag(name: str, default: bool = False) -> bool:
    """Boolean environment variable (1/true/yes/on)."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@functools.lru_cache(maxsize=1)
def docker_engine() -> tuple[bool, str]:
    """(available, detail): one cheap ping of the Docker engine, cached."""
    if _env_flag("SPLADE_CONNECTORS_NO_DOCKER"):
        return False, "SPLADE_CONNECTORS_NO_DOCKER is set"
    try:
        import docker

        client = docker.from_env(timeout=DOCKER_PING_TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # any failure means "no usable engine"
        return False, f"no Docker engine ({type(exc).__name__}: {str(exc)[:120]})"
    return True, "Docker engine answered"


def _get_json(url: str, headers: dict[str, str], verify: bool = True, timeout: float = 10) -> dict[str, object]:
    """GET a JSON object."""
    context = None if verify else ssl._create_unverified_context()
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
        data = json.loads(resp.read().decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"unexpected JSON from {url}")
    return data


def _basic_auth(username: str | None, password: str | None) -> dict[str, str]:
    """Authorization header for HTTP basic auth, if credentials are given."""
    if not username:
        return {}
    token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _opensearch_version(url: str, username: str | None, password: str | None, verify: bool) -> str:
    """``version.number`` of an OpenSearch root endpoint."""
    info = _get_json(url, _basic_auth(username, password), verify)
    version = info.get("version")
    return str(version.get("number")) if isinstance(version, dict) else "?"


def _qdrant_version(url: str, api_key: str | None) -> str:
    """``version`` of a Qdrant root endpoint."""
    headers = {"api-key": api_key} if api_key else {}
    return str(_get_json(url.rstrip("/") + "/", headers).get("version", "?"))


def _unavailable(what: str, reasons: list[str], require_env: str) -> None:
    """Skip (or fail, when ``require_env`` is set) with all collected reasons."""
    message = f"no {what}: " + "; ".join(reasons)
    if _env_flag(require_env):
        pytest.fail(f"{message} ({require_env}=1)", pytrace=False)
    pytest.skip(message)


# ---------------------------------------------------------------- OpenSearch sources


def _opensearch_from_env() -> LiveStore:
    """``OPENSEARCH_URL`` and friends; unreachable when set is an error."""
    url = os.environ.get("OPENSEARCH_URL")
    if not url:
        raise StoreUnavailable("OPENSEARCH_URL not set")
    username = os.environ.get("OPENSEARCH_USERNAME") or None
    password = os.environ.get("OPENSEARCH_PASSWORD") or None
    verify = _env_flag("OPENSEARCH_VERIFY_CERTS", default=True)
    try:
        version = _opensearch_version(url, username, password, verify)
    except Exception as exc:
        pytest.fail(f"OPENSEARCH_URL={url} is set but not reachable: {exc}", pytrace=False)
    return LiveStore("opensearch", url.rstrip("/"), "env", version, username, password, None, verify)


def _opensearch_from_testcontainers(stack: contextlib.ExitStack) -> LiveStore:
    """A pinned OpenSearch container, if a Docker engine answers."""
    available, detail = docker_engine()
    if not available:
        raise StoreUnavailable(detail)
    from testcontainers.community.opensearch import OpenSearchContainer

    container = OpenSearchContainer(OPENSEARCH_IMAGE, security_enabled=False)
    container.with_env("OPENSEARCH_JAVA_OPTS", "-Xms512m -Xmx512m")
    try:
        stack.enter_context(container)
    except Exception as exc:
        raise StoreUnavailable(f"{OPENSEARCH_IMAGE} did not start: {exc}") from exc
    config = container.get_config()
    url = f"http://{config['host']}:{config['port']}"
    return LiveStore("opensearch", url, "testcontainers", _opensearch_version(url, None, None, True))


def _opensearch_native(stack: contextlib.ExitStack) -> LiveStore:
    """The Maven-Central-assembled server on 127.0.0.1."""
    if not _env_flag("SPLADE_CONNECTORS_NATIVE_OPENSEARCH", default=True):
        raise StoreUnavailable("native server disabled by SPLADE_CONNECTORS_NATIVE_OPENSEARCH=0")
    server = NativeOpenSearch(OPENSEARCH_VERSION)
    try:
        url = server.start()
    except Exception as exc:
        raise StoreUnavailable(f"native OpenSearch {OPENSEARCH_VERSION} failed: {exc}") from exc
    stack.callback(server.stop)
    return LiveStore("opensearch", url, "native", _opensearch_version(url, None, None, True))


def _first_opensearch(stack: contextlib.ExitStack) -> tuple[LiveStore | None, list[str]]:
    """Try env, testcontainers, native in order."""
    reasons: list[str] = []
    sources = (_opensearch_from_env, lambda: _opensearch_from_testcontainers(stack), lambda: _opensearch_native(stack))
    for source in sources:
        try:
            return source(), reasons
        except StoreUnavailable as exc:
            reasons.append(str(exc))
    return None, reasons


# ---------------------------------------------------------------- Qdrant sources


def _qdrant_from_env() -> LiveStore:
    """``QDRANT_URL`` (+ ``QDRANT_API_KEY``, ``QDRANT_GRPC_PORT``); unreachable when set is an error."""
    url = os.environ.get("QDRANT_URL")
    if not url:
        raise StoreUnavailable("QDRANT_URL not set")
    api_key = os.environ.get("QDRANT_API_KEY") or None
    try:
        version = _qdrant_version(url, api_key)
    except Exception as exc:
        pytest.fail(f"QDRANT_URL={url} is set but not reachable: {exc}", pytrace=False)
    grpc_port = int(os.environ.get("QDRANT_GRPC_PORT") or 6334)
    return LiveStore("qdrant", url.rstrip("/"), "env", version, api_key=api_key, grpc_port=grpc_port)


def _qdrant_from_testcontainers(stack: contextlib.ExitStack) -> LiveStore:
    """A pinned Qdrant container, if a Docker engine answers."""
    available, detail = docker_engine()
    if not available:
        raise StoreUnavailable(detail)
    from testcontainers.community.qdrant import QdrantContainer

    container = QdrantContainer(QDRANT_IMAGE)
    try:
        stack.enter_context(container)
    except Exception as exc:
        raise StoreUnavailable(f"{QDRANT_IMAGE} did not start: {exc}") from exc
    url = f"http://{container.rest_host_address}"
    return LiveStore("qdrant", url, "testcontainers", _qdrant_version(url, None), grpc_port=container.exposed_grpc_port)


def native_qdrant_binary() -> str:
    """The native Qdrant binary (decompressed into the cache), or `StoreUnavailable` saying why not."""
    if not _env_flag("SPLADE_CONNECTORS_NATIVE_QDRANT", default=True):
        raise StoreUnavailable("native Qdrant disabled by SPLADE_CONNECTORS_NATIVE_QDRANT=0")
    try:
        return str(ensure_binary(find_binary_source()))
    except (ServerError, OSError) as exc:
        raise StoreUnavailable(f"no native Qdrant binary: {exc}") from exc


def _qdrant_native(stack: contextlib.ExitStack) -> LiveStore:
    """The native server binary on 127.0.0.1 (free ports, temporary storage)."""
    server = QdrantServer(native_qdrant_binary())
    try:
        server.start()
    except Exception as exc:
        raise StoreUnavailable(f"native Qdrant failed to start: {exc}") from exc
    stack.callback(server.stop)
    return LiveStore("qdrant", server.url, "native", server.version, grpc_port=server.grpc_port)


def _embedded_qdrant() -> LiveStore:
    """The embedded Qdrant engine (qdrant-edge; the adapter's default without a url)."""
    return LiveStore("qdrant", None, "embedded", "qdrant-edge-py " + _package_version("qdrant-edge-py"))


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def record_qdrant_backend(backend: str) -> None:
    """Note for the summary that a test used an in-process Qdrant backend (`edge` or `local`)."""
    if backend == "edge":
        _USED.setdefault("qdrant embedded", LiveStore("qdrant", None, "embedded", "qdrant-edge-py " + _package_version("qdrant-edge-py")))
    elif backend == "local":
        _USED.setdefault("qdrant local mode", LiveStore("qdrant", None, "embedded", "qdrant-client local mode " + _package_version("qdrant-client")))


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def opensearch_store() -> Iterator[LiveStore]:
    """A live OpenSearch: env, then testcontainers, then native; else skip/fail."""
    with contextlib.ExitStack() as stack:
        store, reasons = _first_opensearch(stack)
        if store is None:
            _unavailable("OpenSearch", reasons, "SPLADE_CONNECTORS_REQUIRE_OPENSEARCH")
        assert store is not None
        _USED["opensearch"] = store
        yield store


@pytest.fixture(scope="session")
def _qdrant_server() -> Iterator[tuple[LiveStore | None, list[str]]]:
    """A real Qdrant server (env, testcontainers or the native binary), or None with the reasons."""
    reasons: list[str] = []
    with contextlib.ExitStack() as stack:
        store: LiveStore | None = None
        for source in (_qdrant_from_env, lambda: _qdrant_from_testcontainers(stack), lambda: _qdrant_native(stack)):
            try:
                store = source()
                break
            except StoreUnavailable as exc:
                reasons.append(str(exc))
        yield store, reasons


@pytest.fixture(scope="session")
def qdrant_store(_qdrant_server: tuple[LiveStore | None, list[str]]) -> LiveStore:
    """A Qdrant server if one can be had, else the embedded engine (url=None)."""
    store = _qdrant_server[0] or _embedded_qdrant()
    _USED.setdefault("qdrant" if store.url else "qdrant embedded", store)
    return store


@pytest.fixture(scope="session")
def qdrant_server_store(_qdrant_server: tuple[LiveStore | None, list[str]]) -> LiveStore:
    """Only a real Qdrant server; skips (or fails, when required) otherwise."""
    store, reasons = _qdrant_server
    if store is None:
        _unavailable("Qdrant server", reasons, "SPLADE_CONNECTORS_REQUIRE_QDRANT_SERVER")
    assert store is not None
    _USED["qdrant"] = store
    return store


@pytest.fixture(scope="session")
def qdrant_binary() -> str:
    """The native Qdrant binary, for tests that start, kill and restart their own server."""
    try:
        return native_qdrant_binary()
    except StoreUnavailable as exc:
        _unavailable("Qdrant server binary", [str(exc)], "SPLADE_CONNECTORS_REQUIRE_QDRANT_SERVER")
        raise


@pytest.fixture(scope="module")
def qdrant_cluster(qdrant_binary: str) -> Iterator[QdrantCluster]:
    """A 3-node Qdrant cluster on 127.0.0.1 from the native binary, one per module (tests may kill and restart nodes)."""
    cluster = QdrantCluster(3, qdrant_binary)
    try:
        cluster.start()
    except ServerError as exc:
        _unavailable("Qdrant cluster", [str(exc)], "SPLADE_CONNECTORS_REQUIRE_QDRANT_SERVER")
    _USED["qdrant cluster"] = LiveStore("qdrant", cluster.url, "native", f"{cluster.version} x{cluster.size} nodes")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def opensearch_cluster() -> Iterator[OpenSearchCluster]:
    """A 3-node native OpenSearch cluster on 127.0.0.1, one per module (tests may kill and restart nodes)."""
    if not _env_flag("SPLADE_CONNECTORS_NATIVE_OPENSEARCH", default=True):
        _unavailable("OpenSearch cluster", ["native server disabled by SPLADE_CONNECTORS_NATIVE_OPENSEARCH=0"], "SPLADE_CONNECTORS_REQUIRE_OPENSEARCH")
    cluster = OpenSearchCluster(3, OPENSEARCH_VERSION)
    try:
        cluster.start()
    except Exception as exc:  # no distribution, no JDK, a node that did not start or join
        _unavailable("OpenSearch cluster", [str(exc)], "SPLADE_CONNECTORS_REQUIRE_OPENSEARCH")
    _USED["opensearch cluster"] = LiveStore("opensearch", cluster.url, "native", f"{cluster.version} x{cluster.size} nodes")
    try:
        yield cluster
    finally:
        cluster.stop()


# ---------------------------------------------------------------- hooks


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``live`` marker."""
    config.addinivalue_line("markers", "live: tests that talk to a live store")


def _source_order() -> tuple[str, str]:
    """Human-readable source order for the report header."""
    native = "native" if _env_flag("SPLADE_CONNECTORS_NATIVE_OPENSEARCH", default=True) else "native(disabled)"
    os_env = "env OPENSEARCH_URL" + ("" if os.environ.get("OPENSEARCH_URL") else " (unset)")
    q_env = "env QDRANT_URL" + ("" if os.environ.get("QDRANT_URL") else " (unset)")
    required = " [required]" if _env_flag("SPLADE_CONNECTORS_REQUIRE_OPENSEARCH") else ""
    q_required = " [server required]" if _env_flag("SPLADE_CONNECTORS_REQUIRE_QDRANT_SERVER") else ""
    try:
        q_native = f"native binary {find_binary_source()}"
    except QdrantBinaryNotFound:
        q_native = "native binary (not found)"
    if not _env_flag("SPLADE_CONNECTORS_NATIVE_QDRANT", default=True):
        q_native = "native binary (disabled)"
    return (
        f"live OpenSearch{required}: {os_env} -> testcontainers {OPENSEARCH_IMAGE} -> {native} {OPENSEARCH_VERSION}",
        f"live Qdrant{q_required}: {q_env} -> testcontainers {QDRANT_IMAGE} -> {q_native} -> embedded engine (qdrant_store only)",
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    """List the store sources that will be tried (no probing here)."""
    return list(_source_order())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    """Say which live stores the session actually used."""
    if not _USED:
        return
    parts = [store.describe() for _, store in sorted(_USED.items())]
    terminalreporter.write_line("live stores used: " + "; ".join(parts))

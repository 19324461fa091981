"""Real servers without Docker, for tests, benchmarks and local use.

- `managed`: the process half every server shares (free ports, run folder, launch, readiness wait,
  port clashes, stop/kill/detach, pidfile state); `commands`: its `fetch | run | start | stop` verbs.
- OpenSearch, assembled from Maven Central: `maven` (artifacts), `jdk` (picking a JDK),
  `opensearch_distribution` (the cached, assembled tree), `opensearch_user` (dropping root),
  `opensearch_native` (`NativeOpenSearch`, the server).
- Qdrant, the native binary: `qdrant_binary` (finding and unpacking it), `qdrant_server` (`QdrantServer`).
- `cache` (the cache root), `locks` (the file lock that makes concurrent sessions unpack once).

Every failure leaves as `splade_connectors.errors.ServerError` (invalid arguments as `ConfigError`).
"""

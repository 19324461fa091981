"""Batched searches: `_msearch` requests sized to the cluster, two in flight, trimmed responses.

- Size: `msearch_size` queries per request (default 8 x the search threads of the cluster's data nodes,
  read once), with `max_concurrent_searches` = those threads, so the server stays busy without
  queueing a whole batch behind one request.
- Overlap: with more than one request, two are in flight, so the client builds and parses one
  while the server answers the other.
- A single query goes to `_search` (no `_msearch` hop on the server).
- Bodies: compact JSON NDJSON, index in the URL (empty header lines); responses keep only what hits
  need (`filter_path`): each response's status/error and the hits' id, score, `_source` and `fields`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from splade_connectors.errors import StoreError, TransientStoreError
from splade_connectors.opensearch.errors import TRANSIENT_STATUS, mapped_errors

MSEARCH_FILTER_PATH = ",".join(
    f"responses.{p}" for p in ("status", "error", "hits.hits._id", "hits.hits._score", "hits.hits._source", "hits.hits.fields")
)
SEARCH_FILTER_PATH = ",".join(f"hits.hits.{p}" for p in ("_id", "_score", "_source", "fields"))
QUERIES_PER_THREAD = 8
IN_FLIGHT = 2
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class MultiSearch:
    """Runs many search bodies against one index and returns one response per body, in order."""

    def __init__(
        self, client: Any, index: str, where: str, *, threads: int, size: int | None, executor: Callable[[], Executor]
    ) -> None:
        self.client, self.index, self.where = client, index, where
        self.threads = max(1, threads)
        self.size = size or QUERIES_PER_THREAD * self.threads
        self._executor = executor

    def run(self, bodies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        if len(bodies) == 1:  # one query: `_search` itself, without `_msearch`'s extra hop on the server
            return [self._search(bodies[0])]
        chunks = [list(range(s, min(s + self.size, len(bodies)))) for s in range(0, len(bodies), self.size)]
        if len(chunks) <= 1:
            answers = [self._send([bodies[i] for i in chunk]) for chunk in chunks]
        else:
            pool = self._executor()
            answers = []
            pending = []
            for chunk in chunks:  # at most IN_FLIGHT requests outstanding; results kept in order
                pending.append(pool.submit(self._send, [bodies[i] for i in chunk]))
                if len(pending) >= IN_FLIGHT:
                    answers.append(pending.pop(0).result())
            answers += [f.result() for f in pending]
        out: list[dict[str, Any]] = []
        for chunk, responses in zip(chunks, answers):
            if len(responses) != len(chunk):
                raise StoreError(f"{self.where}: _msearch answered {len(responses)} responses for {len(chunk)} queries")
            for position, response in zip(chunk, responses):
                out.append(self._checked(response, position))
        return out

    def _send(self, bodies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        payload = "".join(f"{{}}\n{_dumps(body)}\n" for body in bodies)
        params = {"filter_path": MSEARCH_FILTER_PATH, "max_concurrent_searches": self.threads}
        with mapped_errors(self.where, f"msearch of {len(bodies)} queries"):
            answer = self.client.transport.perform_request(
                "POST", f"/{self.index}/_msearch", params=params, body=payload,
                headers={"content-type": "application/x-ndjson"},
            )
        return list((answer or {}).get("responses") or [])

    def _search(self, body: Mapping[str, Any]) -> dict[str, Any]:
        with mapped_errors(self.where, "search"):
            answer = self.client.transport.perform_request(
                "POST", f"/{self.index}/_search", params={"filter_path": SEARCH_FILTER_PATH}, body=_dumps(body),
            )
        return dict(answer or {})

    def _checked(self, response: Mapping[str, Any], position: int) -> dict[str, Any]:
        if "error" in response:
            status = int(response.get("status", 0))
            cls = TransientStoreError if status in TRANSIENT_STATUS else StoreError
            error = response["error"]
            reason = error.get("root_cause", [error])[0].get("reason", error) if isinstance(error, Mapping) else error
            raise cls(f"{self.where}: query #{position} failed [{status}]: {reason}")
        return dict(response)

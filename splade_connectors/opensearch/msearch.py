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

import asyncio
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
        chunks = self._split(bodies)
        if len(chunks) <= 1:
            answers = [self._send(chunk) for chunk in chunks]
        else:
            pool = self._executor()
            answers = []
            pending = []
            for chunk in chunks:  # at most IN_FLIGHT requests outstanding; results kept in order
                pending.append(pool.submit(self._send, chunk))
                if len(pending) >= IN_FLIGHT:
                    answers.append(pending.pop(0).result())
            answers += [f.result() for f in pending]
        return self._collect(chunks, answers)

    async def arun(self, client: Any, bodies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """`run` through an async client (`AsyncOpenSearch`): the same requests, IN_FLIGHT at a time, the same checks."""
        if len(bodies) == 1:
            path, params, body, headers = self._search_request(bodies[0])
            with mapped_errors(self.where, "search"):
                return [dict(await client.transport.perform_request("POST", path, params=params, body=body, headers=headers) or {})]
        chunks = self._split(bodies)
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def send(chunk: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
            path, params, payload, headers = self._msearch_request(chunk)
            async with gate:
                with mapped_errors(self.where, f"msearch of {len(chunk)} queries"):
                    answer = await client.transport.perform_request("POST", path, params=params, body=payload, headers=headers)
            return _responses(answer)

        return self._collect(chunks, await asyncio.gather(*(send(chunk) for chunk in chunks)))

    def _split(self, bodies: Sequence[Mapping[str, Any]]) -> list[Sequence[Mapping[str, Any]]]:
        return [bodies[s : s + self.size] for s in range(0, len(bodies), self.size)]

    def _collect(self, chunks: Sequence[Sequence[Mapping[str, Any]]], answers: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """The responses of all chunks in query order, each checked (a failed query raises)."""
        out: list[dict[str, Any]] = []
        for chunk, responses in zip(chunks, answers):
            if len(responses) != len(chunk):
                raise StoreError(f"{self.where}: _msearch answered {len(responses)} responses for {len(chunk)} queries")
            for response in responses:
                out.append(self._checked(response, len(out)))
        return out

    def _msearch_request(self, bodies: Sequence[Mapping[str, Any]]) -> tuple[str, dict[str, Any], str, dict[str, str]]:
        payload = "".join(f"{{}}\n{_dumps(body)}\n" for body in bodies)
        params = {"filter_path": MSEARCH_FILTER_PATH, "max_concurrent_searches": self.threads}
        return f"/{self.index}/_msearch", params, payload, {"content-type": "application/x-ndjson"}

    def _search_request(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any], str, dict[str, str] | None]:
        return f"/{self.index}/_search", {"filter_path": SEARCH_FILTER_PATH}, _dumps(body), None

    def _send(self, bodies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        path, params, payload, headers = self._msearch_request(bodies)
        with mapped_errors(self.where, f"msearch of {len(bodies)} queries"):
            answer = self.client.transport.perform_request("POST", path, params=params, body=payload, headers=headers)
        return _responses(answer)

    def _search(self, body: Mapping[str, Any]) -> dict[str, Any]:
        path, params, payload, headers = self._search_request(body)
        with mapped_errors(self.where, "search"):
            answer = self.client.transport.perform_request("POST", path, params=params, body=payload, headers=headers)
        return dict(answer or {})

    def _checked(self, response: Mapping[str, Any], position: int) -> dict[str, Any]:
        if "error" in response:
            status = int(response.get("status", 0))
            cls = TransientStoreError if status in TRANSIENT_STATUS else StoreError
            error = response["error"]
            reason = error.get("root_cause", [error])[0].get("reason", error) if isinstance(error, Mapping) else error
            raise cls(f"{self.where}: query #{position} failed [{status}]: {reason}")
        return dict(response)


def _responses(answer: Any) -> list[dict[str, Any]]:
    return list((answer or {}).get("responses") or [])

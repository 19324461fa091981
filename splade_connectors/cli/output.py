"""What the commands print: JSON on stdout, hit tables, ingestion reports, progress bars on stderr.

Formats live here, not in the command that first needed them, so `search` and `demo` print hits
the same way and `ingest` and `demo` report an ingestion the same way.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

from splade_connectors.ingest import IngestReport
from splade_connectors.records import Hit

SHOWN_INVALID = 10  # invalid records listed in an ingestion report


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


@contextmanager
def progress_bar(total: int | None, desc: str, unit: str = "doc", enabled: bool = True) -> Iterator[tqdm]:
    """A tqdm bar on stderr (disabled when not a terminal unless forced)."""
    bar = tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


# ---- hits ---------------------------------------------------------------------------------------------------
def hit_to_json(rank: int, hit: Hit) -> dict[str, Any]:
    data: dict[str, Any] = {"rank": rank, "id": hit.id, "score": round(hit.score, 6), "title": hit.payload.get("title")}
    if hit.payload.get("metadata"):
        data["metadata"] = hit.payload["metadata"]
    if hit.passage is not None:
        data["passage"] = hit.passage.model_dump()
    if hit.terms is not None:
        data["terms"] = [
            {"token": t.token, "query_weight": round(t.query_weight, 4), "document_weight": round(t.document_weight, 4),
             "contribution": round(t.contribution, 4)}
            for t in hit.terms
        ]
    return data


def results_to_json(queries: Sequence[str], results: Sequence[Sequence[Hit]]) -> list[dict[str, Any]]:
    return [{"query": q, "hits": [hit_to_json(r, h) for r, h in enumerate(hits, 1)]} for q, hits in zip(queries, results)]


def excerpt(text: str, width: int) -> str:
    """`text` on one line, cut to `width` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_results(query: str, hits: Sequence[Hit], width: int = 48) -> str:
    """A plain-text table of one query's hits (rank, score, id, title, top terms)."""
    lines = [f'query: "{query}"']
    if not hits:
        return "\n".join([*lines, "  (no hits)"])
    id_width = max(4, *(len(h.id) for h in hits))
    lines.append(f"  {'#':>2}  {'score':>8}  {'id':<{id_width}}  {'title / text':<{width}}  top terms")
    for rank, hit in enumerate(hits, 1):
        title = excerpt(str(hit.payload.get("title") or hit.payload.get("text") or ""), width)
        terms = ", ".join(f"{t.token}({t.contribution:.1f})" for t in hit.terms or [])
        lines.append(f"  {rank:>2}  {hit.score:>8.3f}  {hit.id:<{id_width}}  {title:<{width}}  {terms}")
        if hit.passage is not None:
            span = f"passage {hit.passage.index} [{hit.passage.start}:{hit.passage.end}]"
            lines.append(f"  {'':>2}  {'':>8}  {span:<{id_width}}  {excerpt(hit.passage.text, 2 * width)}")
    return "\n".join(lines)


# ---- ingestion reports ------------------------------------------------------------------------------------------
def ingest_report_to_json(report: IngestReport) -> dict[str, Any]:
    return {**report.summary(), "invalid_examples": [r.describe() for r in report.invalid[:SHOWN_INVALID]]}


def print_ingest_report(report: IngestReport, where: str) -> None:
    changes = f"{report.new} new, {report.updated} updated, {report.unchanged} unchanged"
    if report.deleted:
        changes += f", {report.deleted} deleted"
    print(
        f"{where}: {report.accepted} documents ingested in {report.seconds:.1f}s "
        f"({report.docs_per_second:.1f} docs/s; {changes}), {report.stored} stored"
        + (f", {report.skipped_by_resume} records skipped by resume" if report.skipped_by_resume else "")
        + (f", {report.truncated} truncated" if report.truncated else "")
        + (f", {report.chunked} encoded in windows" if report.chunked else "")
    )
    if report.invalid_count:
        print(f"{report.invalid_count} invalid records skipped:")
        for record in report.invalid[:SHOWN_INVALID]:
            print(f"  {record.describe()}")
        if report.invalid_count > SHOWN_INVALID:
            print(f"  ... and {report.invalid_count - SHOWN_INVALID} more")

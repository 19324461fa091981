"""Fixtures for CLI tests: a tiny BEIR folder whose documents are long enough to need windows of 16 tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DOCS = {
    "d1": ("Cornelius", "Cornelius was a centurion in the book of Acts. He was the first gentile baptised by Peter, "
                        "after a vision in Caesarea, and his household followed him."),
    "d2": ("Paris", "Paris is the capital and largest city of France. It sits on the Seine and is known for "
                    "its museums, its cafes and the tower Gustave Eiffel built for a world fair."),
    "d3": ("Photosynthesis", "Plants turn light, water and carbon dioxide into sugar and oxygen. Chlorophyll in "
                             "the chloroplasts absorbs red and blue light and reflects green."),
    "d4": ("Acts", "The Acts of the Apostles is the fifth book of the New Testament."),
    "d5": ("Tides", "Tides are caused by the gravity of the moon and, less, the sun."),
}
QUERIES = {"q1": "who is cornelius in the book of acts", "q2": "capital of france", "q3": "how do plants make sugar",
           "q4": "what causes tides"}
QRELS = [("q1", "d1", 2), ("q1", "d4", 1), ("q2", "d2", 1), ("q3", "d3", 1), ("q4", "d5", 1)]


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, (t, x) in DOCS.items()), encoding="utf-8"
    )
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items()), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS), encoding="utf-8"
    )
    return folder

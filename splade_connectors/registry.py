"""Building any store from its config: the one factory the CLI, evaluation, the demo and Python users share.

Adapters are imported only when their kind is asked for, so installing one store's client is enough.

    config = store_config("qdrant", url="http://localhost:6333", collection="docs")
    with open_store(config, create=False) as store:     # NotFoundError if the collection is missing
        ...
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, cast

from pydantic import ValidationError

from splade_connectors.errors import ConfigError, config_error
from splade_connectors.store import SparseStore, StoreConfigBase

# kind -> (module, config class, store class, pip extra)
_ADAPTERS: dict[str, tuple[str, str, str, str]] = {
    "qdrant": ("splade_connectors.qdrant", "QdrantConfig", "QdrantStore", "qdrant"),
    "opensearch": ("splade_connectors.opensearch", "OpenSearchConfig", "OpenSearchStore", "opensearch"),
}
STORE_KINDS: tuple[str, ...] = tuple(_ADAPTERS)


def _adapter(kind: str) -> tuple[Any, str, str]:
    if kind not in _ADAPTERS:
        raise ConfigError(f"unknown store {kind!r}; choose from {', '.join(STORE_KINDS)}")
    module_name, config_name, store_name, extra = _ADAPTERS[kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("splade_connectors"):
            raise
        raise ConfigError(
            f"the {kind} store needs the {exc.name!r} package: pip install 'splade-connectors[{extra}]'"
        ) from exc
    return module, config_name, store_name


def config_class(kind: str) -> type[StoreConfigBase]:
    module, config_name, _ = _adapter(kind)
    return getattr(module, config_name)  # type: ignore[no-any-return]  # looked up by name in the adapter module


def store_config(kind: str, **options: Any) -> StoreConfigBase:
    """A validated config for a store kind; invalid options give one `ConfigError` naming each field."""
    cls = config_class(kind)
    try:
        return cls(**options)
    except ValidationError as exc:
        raise config_error(exc, f"{kind} options") from None


def build_store(config: StoreConfigBase, *, vocabulary: Sequence[str] | None = None, **adapter_options: Any) -> SparseStore:
    """The store for a config, not yet opened (no I/O).

    `vocabulary` (the model's tokens) goes to the stores that name features by token (OpenSearch,
    `StoreBase.takes_vocabulary`); the others do not need it.
    """
    module, _, store_name = _adapter(config.kind)
    store_class = getattr(module, store_name)  # a `StoreBase` subclass; its constructor adds its own options
    if store_class.takes_vocabulary:
        adapter_options["vocabulary"] = vocabulary
    return cast(SparseStore, store_class(config, **adapter_options))


def open_store(
    config: StoreConfigBase, *, vocabulary: Sequence[str] | None = None, create: bool = True, **adapter_options: Any
) -> SparseStore:
    """The store for a config, opened: created when missing (`create`), else `NotFoundError`."""
    store = build_store(config, vocabulary=vocabulary, **adapter_options)
    store.open(create=create)
    return store

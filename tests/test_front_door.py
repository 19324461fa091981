"""The front door: `from splade_connectors import ...` gives every name a user needs, cheaply.

Names load on first use, so importing the package pays for neither torch nor a store client; each
name is the object of the module it comes from; `search` and `ingest` stay the functions even when
their submodules were imported first.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest

import splade_connectors

HEAVY = ("torch", "transformers", "qdrant_client", "qdrant_edge", "opensearchpy", "ray", "aiohttp")


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.parametrize("name", splade_connectors.__all__)
def test_every_exported_name_is_its_home_modules_object(name: str) -> None:
    value = getattr(splade_connectors, name)
    home = importlib.import_module(splade_connectors._EXPORTS[name])
    assert value is getattr(home, name)
    assert name in dir(splade_connectors)


def test_the_names_a_user_needs_are_there() -> None:
    wanted = {
        "SpladeEncoder", "store_config", "open_store", "ingest", "ingest_file", "search", "asearch", "HybridOptions",
        "evaluate", "load_retrieval_dataset", "Hit", "SparseStore", "StoreError", "ConfigError",
    }
    assert wanted <= set(splade_connectors.__all__)
    with pytest.raises(AttributeError, match="no attribute 'QdrantStore'"):
        splade_connectors.QdrantStore  # noqa: B018 - adapters stay in their subpackages (built through the registry)


def test_importing_the_package_loads_no_model_library_and_no_store_client() -> None:
    loaded = _run(
        f"""
        import sys
        import splade_connectors
        print(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r})))
        """
    )
    assert loaded == "[]"


def test_search_and_ingest_are_the_functions_even_after_their_modules_were_imported() -> None:
    kinds = _run(
        """
        import splade_connectors.search, splade_connectors.ingest.pipeline  # the submodules first
        from splade_connectors import ingest, search, asearch
        import inspect
        print(inspect.isfunction(search), inspect.isfunction(ingest), inspect.iscoroutinefunction(asearch))
        """
    )
    assert kinds == "True True True"

"""The CLI against a live OpenSearch: credentials in the URL are used but never printed or logged, wrong
credentials, a missing index, an index of another kind, an empty input and a bad checkpoint are each one
`error:` line.

The native test server runs without the security plugin, so credentials are checked by `BasicAuthProxy`
in front of it: right credentials are forwarded (proving they were sent), wrong ones get a 401.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.splade_connectors.cli.conftest import BasicAuthProxy, CliRun, cli_env, run_process, write_jsonl

pytestmark = pytest.mark.live
Cli = Callable[..., CliRun]
USER, PASSWORD = "admin", "S3cr3t-pw@42"  # '@' in the password: percent-encoded in the URL, decoded by the config
URL_PASSWORD = "S3cr3t-pw%4042"
DOCS = [
    {"_id": "4983", "text": "Vitamin D supplements and bone density in older adults.", "year": 2020, "source": "pubmed"},
    {"_id": "5001", "text": "Bone density loss in astronauts during long space flights.", "year": 2019, "source": "nasa"},
    {"_id": "77", "text": "Calcium intake and fracture risk: a cohort study.", "year": 2020, "source": "pubmed"},
]


@pytest.fixture
def proxy(opensearch_store: Any) -> Iterator[BasicAuthProxy]:
    if opensearch_store.username:
        pytest.skip("the live OpenSearch has its own credentials; the proxy stands in for a secured server")
    with BasicAuthProxy(opensearch_store.url, USER, PASSWORD) as running:
        yield running


def _index_exists(live: Any, index: str) -> bool:
    request = urllib.request.Request(f"{live.url}/{index}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=30):
            return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


def _delete_index(live: Any, index: str) -> None:
    request = urllib.request.Request(f"{live.url}/{index}?ignore_unavailable=true", method="DELETE")
    with urllib.request.urlopen(request, timeout=30):
        pass


@pytest.fixture
def index(opensearch_store: Any) -> Iterator[str]:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    yield name
    _delete_index(opensearch_store, name)


def _all_text_under(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in folder.rglob("*") if p.is_file())


def test_url_credentials_are_used_but_never_shown(proxy: BasicAuthProxy, index: str, tmp_path: Path) -> None:
    """`--opensearch-url http://admin:secret@host` authenticates every request, yet the password never shows.

    Real processes with -v (debug logging of the CLI, opensearch-py and urllib3): nothing on stdout, stderr
    or in any file written shows the password, raw or percent-encoded, while the proxy saw it on every request.
    """
    url = proxy.url.replace("http://", f"http://{USER}:{URL_PASSWORD}@")
    work = tmp_path / "work"
    work.mkdir()
    corpus = write_jsonl(work / "docs.jsonl", DOCS)
    store = ["--store", "opensearch", "--opensearch-url", url, "--index", index]
    ingest = run_process(["-v", "ingest", "--input", str(corpus), *store, "--checkpoint", str(work / "resume.json"), "--no-progress"], cwd=work)
    search = run_process(["-v", "search", *store, "-q", "vitamin d and bone density", "--explain", "--json"], cwd=work)
    assert ingest.code == 0, ingest.err[-2000:]
    assert search.code == 0, search.err[-2000:]
    assert json.loads(search.out)["results"][0]["hits"][0]["id"] == "4983"
    assert proxy.authorised >= 3 and proxy.refused == 0  # the credentials were sent, on every request
    assert "DEBUG" in ingest.err and "opensearch" in ingest.err  # debug logging of the client was on
    shown = "\n".join([ingest.out, ingest.err, search.out, search.err, _all_text_under(work)])
    for secret in (PASSWORD, URL_PASSWORD, "S3cr3t"):
        assert secret not in shown


def test_url_credentials_in_a_failing_run_with_tracebacks(tmp_path: Path) -> None:
    """The failure path with -v: the debug traceback and the error line are redacted too."""
    url = f"http://{USER}:{URL_PASSWORD}@127.0.0.1:9"
    run = run_process(["-v", "search", "--store", "opensearch", "--opensearch-url", url, "-q", "x"], cwd=tmp_path,
                      env=cli_env(QDRANT_API_KEY="unused-key-xyz"))
    assert run.code == 2 and "Traceback" in run.err  # -v shows the details...
    assert run.err.strip().splitlines()[-1].startswith("error: opensearch index 'splade' (http://127.0.0.1:9")
    for secret in (PASSWORD, URL_PASSWORD, "S3cr3t"):
        assert secret not in run.err + run.out  # ...without the secret


def test_wrong_credentials_are_one_line(cli: Cli, proxy: BasicAuthProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENSEARCH_PASSWORD", "not-the-password")
    line = cli("search", "--store", "opensearch", "--opensearch-url", proxy.url, "--opensearch-user", USER, "-q", "x").error_line()
    assert "refused the credentials (HTTP 401)" in line and "not-the-password" not in line
    url = proxy.url.replace("http://", f"http://{USER}:wrong-in-url@")
    line = cli("search", "--store", "opensearch", "--opensearch-url", url, "-q", "x").error_line()
    assert "refused the credentials (HTTP 401)" in line and "wrong-in-url" not in line and proxy.authorised == 0


def test_search_on_a_missing_index_does_not_create_it(cli: Cli, opensearch_store: Any, index: str) -> None:
    args = ["search", "--store", "opensearch", "--opensearch-url", opensearch_store.url, "--index", index, "-q", "x"]
    line = cli(*args).error_line()
    assert f"opensearch index '{index}'" in line and "does not exist" in line
    assert not _index_exists(opensearch_store, index)


def test_an_existing_index_of_another_kind_is_one_line(cli: Cli, opensearch_store: Any, index: str) -> None:
    request = urllib.request.Request(f"{opensearch_store.url}/{index}", method="PUT")
    with urllib.request.urlopen(request, timeout=30):
        pass  # a plain index without the SPLADE mapping
    line = cli("search", "--store", "opensearch", "--opensearch-url", opensearch_store.url, "--index", index, "-q", "x").error_line()
    assert f"opensearch index '{index}'" in line




def test_an_empty_input_file_exits_2(cli: Cli, opensearch_store: Any, index: str, tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    args = ["ingest", "--input", str(tmp_path / "empty.jsonl"), "--store", "opensearch", "--opensearch-url", opensearch_store.url,
            "--index", index, "--no-progress"]
    assert "empty.jsonl" in cli(*args).error_line()


def test_a_bad_ingestion_checkpoint_is_one_line(cli: Cli, opensearch_store: Any, index: str, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    (tmp_path / "resume.json").write_text("{truncated", encoding="utf-8")
    args = ["ingest", "--input", str(corpus), "--store", "opensearch", "--opensearch-url", opensearch_store.url, "--index", index,
            "--checkpoint", str(tmp_path / "resume.json"), "--no-progress"]
    assert "checkpoint" in cli(*args).error_line().lower()

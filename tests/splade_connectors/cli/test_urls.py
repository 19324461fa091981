"""Store URLs are parsed safely: a malformed one is one `error:` line (exit 2) naming the problem with the credentials
masked, never a traceback, on both stores, from an option, the environment or a config object; `-v` tracebacks are
redacted too; credentials with reserved characters work when percent-encoded (end to end through a basic-auth proxy
in front of the live OpenSearch).

The password of every form is `Qx7pw` + a reserved character + `ss99zz`: a library that reads the URL without the
strict parse shows the part before the reserved character (`Qx7pw`, as the port) or after it; neither may appear.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from splade_connectors.errors import ConfigError, mask_one_url, mask_url
from splade_connectors.opensearch import OpenSearchConfig
from splade_connectors.qdrant import QdrantConfig
from splade_connectors.registry import store_config
from splade_connectors.urls import parse_store_url, url_secrets
from tests.splade_connectors.cli.conftest import BasicAuthProxy, CliRun, cli_env, run_process

Cli = Callable[..., CliRun]
FRAGMENTS = ("Qx7pw", "ss99zz")  # the two halves of every password below

# (URL, what the error line says): each form of the issue (a reserved character in the password, a port that is not
# a number, a password without a host) and other malformed URLs
MALFORMED = [
    ("http://admin:Qx7pw/ss99zz@127.0.0.1:1", "an '@' after the host part"),
    ("http://admin:Qx7pw#ss99zz@127.0.0.1:1", "an '@' after the host part"),
    ("http://admin:Qx7pw?ss99zz@127.0.0.1:1", "an '@' after the host part"),
    ("http://admin:Qx7pw@ss99zz/@127.0.0.1:1", "an '@' after the host part"),
    ("http://admin:Qx7pw-ss99zz@127.0.0.1:port", "its port is not a number"),
    ("http://admin:Qx7pw-ss99zz@127.0.0.1:99999", "its port is not a number"),
    ("http://admin:Qx7pw-ss99zz", "its port is not a number"),  # the host forgotten: the password reads as the port
    ("http://admin:Qx7pw:ss99zz", "its port is not a number"),
    ("http://admin:Qx7pw ss99zz@127.0.0.1:1", "a space or a control character"),
    ("ftp://admin:Qx7pw-ss99zz@127.0.0.1:1", "unsupported scheme 'ftp'"),
    ("admin:Qx7pw-ss99zz@127.0.0.1:1", "does not start with http:// or https://"),
    ("http://admin:Qx7pw-ss99zz@[::1:1", "IPv6"),
    ("http://admin:Qx7pw-ss99zz@", "no host"),
]
IDS = [f"form{i}" for i in range(len(MALFORMED))]


def _assert_clean(*texts: str) -> None:
    shown = "\n".join(texts)
    for fragment in FRAGMENTS:
        assert fragment not in shown, shown


# ---- the parser ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "problem"), MALFORMED, ids=IDS)
def test_a_malformed_url_is_refused_naming_the_problem_credentials_masked(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_store_url(url, what="--opensearch-url")
    message = str(caught.value)
    assert message.startswith("--opensearch-url ") and problem in message and "\n" not in message
    assert "***" in message or "@" not in url
    _assert_clean(message, mask_one_url(url))


@pytest.mark.parametrize(
    ("url", "user", "password", "clean"),
    [
        ("http://admin:Qx7pw%2Fss99zz@127.0.0.1:9200", "admin", "Qx7pw/ss99zz", "http://127.0.0.1:9200"),
        ("https://ad%40min:%3F%23%40%3A%25%2F@host.example:443/prefix", "ad@min", "?#@:%/", "https://host.example:443/prefix"),
        ("http://token@[::1]:6333", "token", None, "http://[::1]:6333"),
        ("http://admin:p@ss@h:9", "admin", "p@ss", "http://h:9"),  # an unencoded '@': the last one ends the credentials
        ("localhost:9200", None, None, "localhost:9200"),  # no scheme: http
        ("http://host:9200/", None, None, "http://host:9200/"),
    ],
)
def test_percent_encoded_credentials_are_decoded(url: str, user: str | None, password: str | None, clean: str) -> None:
    parsed = parse_store_url(url)
    assert (parsed.username, parsed.password, parsed.url) == (user, password, clean)


def test_masking_and_secrets_of_malformed_urls() -> None:
    """The masks used in messages and logs hide what a malformed URL holds before its last '@'."""
    assert mask_url("failed: (http://admin:Qx7pw/ss99zz@127.0.0.1:1) and http://k3y@h") == "failed: (http://admin:***@127.0.0.1:1) and http://***@h"
    assert mask_one_url("http://admin:Qx7pw ss99zz@h") == "http://admin:***@h"
    assert mask_one_url("http://admin:Qx7pwss99zz/x") == "http://admin:***"
    assert url_secrets("http://admin:Qx7pw/ss99zz@127.0.0.1:1") == ["Qx7pw/ss99zz"]
    assert url_secrets("http://admin:Qx7pw%2Fss99zz@h") == ["Qx7pw%2Fss99zz", "Qx7pw/ss99zz"]


# ---- config objects ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "problem"), MALFORMED, ids=IDS)
def test_config_objects_refuse_malformed_urls_without_showing_them(url: str, problem: str) -> None:
    """`OpenSearchConfig(hosts=...)`/`QdrantConfig(url=...)` from Python, and the registry's one `ConfigError`."""
    for kind, options, cls in (("opensearch", {"hosts": [url]}, OpenSearchConfig), ("qdrant", {"url": url}, QdrantConfig)):
        with pytest.raises(ValidationError) as caught:
            cls(**options)
        _assert_clean(str(caught.value), repr(caught.value))
        with pytest.raises(ConfigError) as config_error:
            store_config(kind, **options)
        assert problem in str(config_error.value)
        _assert_clean(str(config_error.value))


def test_qdrant_refuses_credentials_in_its_url() -> None:
    """qdrant-client drops credentials from a URL: refused, saying where the API key goes."""
    with pytest.raises(ConfigError, match="credentials in the URL are not used") as caught:
        store_config("qdrant", url="http://admin:Qx7pw%2Fss99zz@127.0.0.1:6333")
    assert "http://admin:***@127.0.0.1:6333" in str(caught.value) and "api_key" in str(caught.value)
    _assert_clean(str(caught.value))


# ---- the command line ----------------------------------------------------------------------------------------------
def _store_args(option: str, url: str) -> list[str]:
    return ["--store", "opensearch", "--opensearch-url", url] if option == "opensearch" else ["--qdrant-url", url]


@pytest.mark.parametrize("option", ["opensearch", "qdrant"])
@pytest.mark.parametrize(("url", "problem"), MALFORMED, ids=IDS)
def test_the_cli_prints_one_masked_line(cli: Cli, option: str, url: str, problem: str) -> None:
    run = cli("search", *_store_args(option, url), "-q", "x")
    line = run.error_line()  # exit 2, one line, no traceback
    flag = "--opensearch-url" if option == "opensearch" else "--qdrant-url"
    assert line.startswith(f"error: {flag} ") and problem in line
    _assert_clean(run.out, run.err)


def test_urls_from_the_environment_are_refused_naming_the_variable(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENSEARCH_URL", MALFORMED[0][0])
    monkeypatch.setenv("QDRANT_URL", MALFORMED[1][0])
    first = cli("search", "--store", "opensearch", "-q", "x")
    second = cli("search", "-q", "x")
    assert first.error_line().startswith("error: $OPENSEARCH_URL http://admin:***@127.0.0.1:1: an '@' after the host part")
    assert second.error_line().startswith("error: $QDRANT_URL http://admin:***@127.0.0.1:1: an '@' after the host part")
    _assert_clean(first.out, first.err, second.out, second.err)


def test_real_processes_with_and_without_v(tmp_path: Path) -> None:
    """What a user sees, with the CLI's own logging (not pytest's): every malformed form on both stores with -v, in
    one process that runs the command once per form; the issue's own form as a command of its own, with and
    without -v. With -v the traceback is shown and redacted; the last line is the one error line. (An ordinary
    connection error with -v: `test_live_opensearch.test_url_credentials_in_a_failing_run_with_tracebacks`.)"""
    commands = [["-v", "search", *_store_args(option, url), "-q", "x"] for url, _ in MALFORMED for option in ("opensearch", "qdrant")]
    problems = [problem for _, problem in MALFORMED for _ in ("opensearch", "qdrant")]
    script = (
        "import json, sys\nfrom splade_connectors.cli import main\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    code = main(args)\n"
        "    print(f'@@ exit {code}', file=sys.stderr, flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, json.dumps(commands)], cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, timeout=600)
    outputs = done.stderr.split("@@ exit ")
    assert done.returncode == 0 and len(outputs) == len(commands) + 1, done.stderr[-3000:]
    for i, (args, problem) in enumerate(zip(commands, problems)):
        err = outputs[i].partition("\n")[2] if i else outputs[0]  # each chunk after the first starts with the exit code
        code = int(outputs[i + 1].split()[0])
        lines = err.strip().splitlines()
        assert code == 2 and "Traceback" in err and lines[-1].startswith("error: ") and problem in lines[-1], (args, err)
    _assert_clean(done.stdout, done.stderr)

    single = [
        (["search", *_store_args("opensearch", MALFORMED[0][0]), "-q", "x"], MALFORMED[0][1]),
        (["-v", "search", *_store_args("opensearch", MALFORMED[0][0]), "-q", "x"], MALFORMED[0][1]),
    ]
    for args, problem in single:
        result = run_process(args, cwd=tmp_path, env=cli_env())
        lines = result.err.strip().splitlines()
        assert result.code == 2 and lines and lines[-1].startswith("error: ") and problem in lines[-1], (args, result.err[-2000:])
        assert ("Traceback" in result.err) == ("-v" in args), (args, result.err[-2000:])  # -v shows the details
        _assert_clean(result.out, result.err)


# ---- percent-encoded credentials against the live OpenSearch -------------------------------------------------------
PASSWORD = "Qx7pw/?#@:% ss99zz"  # every reserved character and a space


@pytest.fixture
def proxy(opensearch_store: Any) -> Iterator[BasicAuthProxy]:
    if opensearch_store.username:
        pytest.skip("the live OpenSearch has its own credentials; the proxy stands in for a secured server")
    with BasicAuthProxy(opensearch_store.url, "ad@min", PASSWORD) as running:
        yield running


@pytest.mark.live
def test_percent_encoded_credentials_reach_the_server(cli: Cli, proxy: BasicAuthProxy) -> None:
    """`ad%40min:<password percent-encoded>@host` authenticates (the proxy checks the decoded pair on every request),
    and the password shows nowhere: the search runs up to the missing index, an ordinary one-line error."""
    userinfo = f"{urllib.parse.quote('ad@min', safe='')}:{urllib.parse.quote(PASSWORD, safe='')}"
    url = proxy.url.replace("http://", f"http://{userinfo}@")
    index = f"cli-missing-{uuid.uuid4().hex[:8]}"
    run = cli("search", "--store", "opensearch", "--opensearch-url", url, "--index", index, "-q", "x")
    lines = run.err.strip().splitlines()  # (the model's loading bar may come first when transformers was not loaded yet)
    assert run.code == 2 and "Traceback" not in run.err and lines[-1].startswith("error: ")
    assert f"opensearch index '{index}'" in lines[-1] and "does not exist" in lines[-1]
    assert proxy.authorised >= 1 and proxy.refused == 0  # the decoded credentials were sent, and only they
    _assert_clean(run.out, run.err)

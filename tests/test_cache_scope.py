"""The response cache's scope (endpoint and account), its default folder, and `contentgen cache`.

Stacks are built by the production wiring with real SDK clients (nothing is sent); the cache is
a real diskcache folder under ``tmp_path``; the command runs through typer's ``CliRunner`` from
a working directory outside the repository, and once as the installed ``contentgen`` script.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import diskcache
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from pipeline.cli.main import app
from pipeline.client.cache import (
    DEFAULT_BASE_URL,
    CacheScope,
    ResponseCache,
    account_hash,
    cache_stats,
    clear_cache,
    normalize_endpoint,
)
from pipeline.client.result import APIResult
from pipeline.client.wiring import build_client_stack, cache_scope, current_cache_scope
from pipeline.errors import ConfigError
from pipeline.money.pricing import Usage
from pipeline.prompts.requests import response_cache_key
from pipeline.settings import Settings, get_settings
from tests.engine_support import CONFIG_DIR

SECRET = "sk-proj-Zq8VtS3cr3tK3yThatMustN3verB3St0red0nD1sk"
SIM_URL = "http://127.0.0.1:8000/v1"
BODY: dict[str, Any] = {
    "model": "gpt-4.1-mini",
    "input": [{"role": "user", "content": "Summarise this."}],
    "max_output_tokens": 300,
}
RESULT = APIResult(
    response_id="resp_1",
    model="gpt-4.1-mini",
    status="completed",
    output_text="simulated text",
    usage=Usage(input_tokens=20, cached_tokens=0, output_tokens=5, reasoning_tokens=0),
)
OPENAI_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID")


@pytest.fixture(autouse=True)
def _no_openai_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's own OpenAI variables take no part (the SDK reads some of them itself)."""
    for name in OPENAI_VARS:
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def make_settings(cache_dir: Path, base_url: str | None, key: str) -> Settings:
    """Settings for a stack against ``base_url`` as ``key``, caching in ``cache_dir``."""
    return Settings(
        database_url="sqlite://",
        config_dir=CONFIG_DIR,
        cache_dir=cache_dir,
        openai_base_url=base_url,
        openai_api_key=SecretStr(key),
    )


def cached_in(settings: Settings) -> APIResult | None:
    """What the stack the production wiring builds from ``settings`` finds for ``BODY``."""
    stack = build_client_stack(settings)
    try:
        return stack.cache.get(response_cache_key(BODY))
    finally:
        asyncio.run(stack.aclose())


def store_from(settings: Settings) -> None:
    """Store ``RESULT`` for ``BODY`` through the stack built from ``settings``."""
    stack = build_client_stack(settings)
    try:
        stack.cache.put(response_cache_key(BODY), RESULT, ttl_s=None)
    finally:
        asyncio.run(stack.aclose())


def file_bytes(directory: Path) -> bytes:
    """Every byte of every file under ``directory`` (database, WAL, value files)."""
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


# -- the scope -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, "https://api.openai.com/v1"),
        ("https://api.openai.com/v1/", "https://api.openai.com/v1"),
        ("HTTPS://API.OpenAI.com:443/v1", "https://api.openai.com/v1"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
        ("http://user:pw@127.0.0.1:8000/v1?x=1#f", "http://127.0.0.1:8000/v1"),
        ("http://localhost:80", "http://localhost"),
        ("http://[::1]:8001/v1", "http://[::1]:8001/v1"),
    ],
)
def test_endpoint_is_normalised(url: str | None, expected: str) -> None:
    """Scheme, host, port and path name the endpoint; case, default port, slash, user do not."""
    assert normalize_endpoint(url) == expected


def test_an_endpoint_that_is_no_url_is_a_config_error() -> None:
    """A base URL without scheme or host is refused in one line, never echoed with a password."""
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        normalize_endpoint("127.0.0.1:8000/v1")
    with pytest.raises(ConfigError) as caught:
        normalize_endpoint("ftp://user:hunter2@host/v1")
    assert "hunter2" not in str(caught.value)


def test_account_is_a_hash_of_the_key_or_of_org_and_project() -> None:
    """Keys give different accounts; org/project, when set, name the account whatever the key."""
    a, b = account_hash("sk-a"), account_hash("sk-b")
    assert a != b and len(a) == 32 and "sk-a" not in a
    assert account_hash("sk-a", project="proj_1") == account_hash("sk-b", project="proj_1")
    assert account_hash("sk-a", project="proj_1") != account_hash("sk-a", project="proj_2")
    assert account_hash("sk-a", organization="org_1") != account_hash("sk-a", project="org_1")


def test_scope_is_taken_from_the_sdk_client_that_sends() -> None:
    """The wiring scopes by the SDK's own base URL and credentials (org/project from its env)."""
    stack = build_client_stack(make_settings(Path("unused"), SIM_URL, SECRET), use_cache=False)
    assert stack.sdk is not None
    assert cache_scope(stack.sdk) == CacheScope.of(SIM_URL, api_key=SECRET)
    asyncio.run(stack.aclose())
    default = make_settings(Path("unused"), None, SECRET)
    assert current_cache_scope(default) == CacheScope(DEFAULT_BASE_URL, account_hash(SECRET))


def test_scope_follows_the_sdks_organization_and_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENAI_PROJECT_ID, which the SDK sends, names the account instead of the key."""
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_news")
    one = current_cache_scope(make_settings(Path("unused"), None, "sk-one"))
    two = current_cache_scope(make_settings(Path("unused"), None, "sk-rotated"))
    assert one == two == CacheScope.of(None, api_key=None, project="proj_news")


def test_a_response_is_a_miss_on_another_base_url(tmp_path: Path) -> None:
    """Cached against the simulator, the same request is a miss against OpenAI or another port."""
    store_from(make_settings(tmp_path, SIM_URL, "sk-sim"))
    assert cached_in(make_settings(tmp_path, SIM_URL, "sk-sim")) == RESULT
    assert cached_in(make_settings(tmp_path, None, "sk-sim")) is None
    assert cached_in(make_settings(tmp_path, "http://127.0.0.1:8001/v1", "sk-sim")) is None
    assert cached_in(make_settings(tmp_path, SIM_URL + "/", "sk-sim")) == RESULT


def test_a_response_is_a_miss_for_another_api_key(tmp_path: Path) -> None:
    """Cached for one key, the same request to the same server is a miss for another key."""
    store_from(make_settings(tmp_path, None, "sk-account-a"))
    assert cached_in(make_settings(tmp_path, None, "sk-account-b")) is None
    assert cached_in(make_settings(tmp_path, None, "sk-account-a")) == RESULT


def test_the_api_key_never_reaches_the_cache_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the key nor a piece of it is in the cache's bytes, logs or `cache` output."""
    caplog.set_level("DEBUG")
    store_from(make_settings(tmp_path / "c", SIM_URL, SECRET))
    store_from(make_settings(tmp_path / "c", None, SECRET))
    raw = file_bytes(tmp_path / "c")
    assert raw and b"simulated text" in raw  # the folder does hold the entries
    for needle in (SECRET, SECRET[8:24], SECRET[-16:]):
        assert needle.encode() not in raw
        assert needle not in caplog.text
    stats = json.dumps(cache_stats(tmp_path / "c").as_dict())
    assert SECRET[8:24] not in stats and account_hash(SECRET)[:8] in stats


# -- where the cache lives -------------------------------------------------------------------


def test_default_folder_is_the_users_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """$XDG_CACHE_HOME/contentgen/responses, else ~/.cache/...; CONTENTGEN_CACHE_DIR wins."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Settings().cache_dir == tmp_path / "xdg" / "contentgen" / "responses"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for unset in ("", "relative/cache"):  # the XDG spec ignores a relative path
        monkeypatch.setenv("XDG_CACHE_HOME", unset)
        assert Settings().cache_dir == tmp_path / "home" / ".cache" / "contentgen" / "responses"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert Settings().cache_dir == tmp_path / "home" / ".cache" / "contentgen" / "responses"
    monkeypatch.setenv("CONTENTGEN_CACHE_DIR", str(tmp_path / "mine"))
    assert Settings().cache_dir == tmp_path / "mine"


def test_default_folder_is_not_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two runs started in different folders share one cache, and neither folder gets it."""
    monkeypatch.chdir(tmp_path)
    folder = Settings().cache_dir
    assert folder.is_absolute() and tmp_path not in folder.parents


# -- contentgen cache stats | clear ---------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Result]:
    """`contentgen ARGS` with the cache in tmp_path/cache, from an empty folder elsewhere."""
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("CONTENTGEN_CACHE_DIR", str(tmp_path / "cache"))

    def run(*args: str) -> Result:
        get_settings.cache_clear()
        return CliRunner().invoke(app, list(args))

    return run


def fill(directory: Path) -> tuple[CacheScope, CacheScope, CacheScope]:
    """Entries of three scopes: simulator (2), OpenAI as key a (1), OpenAI as key b (1)."""
    sim = CacheScope.of(SIM_URL, api_key="sk-sim")
    live_a = CacheScope.of(None, api_key="sk-a")
    live_b = CacheScope.of(None, api_key="sk-b")
    for scope, bodies in ((sim, 2), (live_a, 1), (live_b, 1)):
        with ResponseCache(directory, scope=scope) as cache:
            for n in range(bodies):
                cache.put(response_cache_key({**BODY, "max_output_tokens": n + 1}), RESULT, None)
    return sim, live_a, live_b


def per_scope(data: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(s["endpoint"], s["account"]): s["entries"] for s in data["scopes"]}


def test_stats_on_a_missing_folder_is_empty(cli: Callable[..., Result], tmp_path: Path) -> None:
    """Before any run: 0 entries, exit 0, no traceback, and the folder is not created."""
    result = cli("cache", "stats")
    assert result.exit_code == 0, result.output
    assert "0 entries" in result.output and "not created yet" in result.output
    data = json.loads(cli("cache", "stats", "--json").stdout)
    assert data == {
        "directory": str(tmp_path / "cache"),
        "exists": False,
        "entries": 0,
        "size_bytes": 0,
        "scopes": [],
    }
    cleared = cli("cache", "clear", "--json")
    assert cleared.exit_code == 0 and json.loads(cleared.stdout)["removed"] == 0
    assert not (tmp_path / "cache").exists()
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_stats_counts_entries_per_scope(cli: Callable[..., Result], tmp_path: Path) -> None:
    """Entries, bytes on disk and entries per endpoint and account fingerprint."""
    sim, live_a, live_b = fill(tmp_path / "cache")
    data = json.loads(cli("cache", "stats", "--json").stdout)
    assert data["entries"] == 4 and data["size_bytes"] > 0 and data["exists"]
    assert per_scope(data) == {
        (SIM_URL, sim.fingerprint): 2,
        (DEFAULT_BASE_URL, live_a.fingerprint): 1,
        (DEFAULT_BASE_URL, live_b.fingerprint): 1,
    }
    assert {s["host"] for s in data["scopes"]} == {"127.0.0.1:8000", "api.openai.com"}
    text = cli("cache", "stats")
    assert text.exit_code == 0 and "4 entries" in text.output
    assert sim.fingerprint in text.output and str(tmp_path / "cache") in text.output


def test_clear_one_endpoint(cli: Callable[..., Result], tmp_path: Path) -> None:
    """--endpoint removes that server's entries (every account) and says so; others stay."""
    sim, _, _ = fill(tmp_path / "cache")
    result = cli("cache", "clear", "--endpoint", SIM_URL + "/", "--json")
    assert result.exit_code == 0, result.output
    removed = json.loads(result.stdout)
    assert removed["removed"] == 2 and per_scope(removed) == {(SIM_URL, sim.fingerprint): 2}
    left = json.loads(cli("cache", "stats", "--json").stdout)
    assert left["entries"] == 2 and {s["endpoint"] for s in left["scopes"]} == {DEFAULT_BASE_URL}


def test_clear_the_current_scope(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--scope current removes only the entries of the configured endpoint and key."""
    _sim, live_a, live_b = fill(tmp_path / "cache")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-a")
    result = cli("cache", "clear", "--scope", "current")
    assert result.exit_code == 0, result.output
    assert "Removed 1 entries of the current scope" in result.output
    assert live_a.fingerprint in result.output and "sk-a" not in result.output
    left = per_scope(json.loads(cli("cache", "stats", "--json").stdout))
    assert (DEFAULT_BASE_URL, live_a.fingerprint) not in left
    assert left[DEFAULT_BASE_URL, live_b.fingerprint] == 1 and sum(left.values()) == 3


def test_clear_everything(cli: Callable[..., Result], tmp_path: Path) -> None:
    """Without options every entry goes, old unscoped ones too, with a count per scope."""
    fill(tmp_path / "cache")
    with diskcache.Cache(str(tmp_path / "cache")) as raw:
        raw.set("v1:" + "0" * 64, "{}")  # an entry from before scopes
    result = cli("cache", "clear", "--json")
    removed = json.loads(result.stdout)
    assert removed["removed"] == 5 and len(removed["scopes"]) == 4
    assert removed["scopes"][-1] == {"endpoint": None, "host": None, "account": None, "entries": 1}
    assert json.loads(cli("cache", "stats", "--json").stdout)["entries"] == 0


def test_clear_errors_are_one_line(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both filters, or the current scope without a key, are a one-line error with exit 2."""
    both = cli("cache", "clear", "--endpoint", SIM_URL, "--scope", "current")
    assert both.exit_code == 2 and "not both" in both.output and "Traceback" not in both.output
    no_key = cli("cache", "clear", "--scope", "current")
    assert no_key.exit_code == 2 and "OPENAI_API_KEY is not set" in no_key.output
    bad = cli("cache", "clear", "--endpoint", "not-a-url")
    assert bad.exit_code == 2 and "OPENAI_BASE_URL" in bad.output


def test_help_ends_with_an_example(cli: Callable[..., Result]) -> None:
    """Each `cache` command's help ends with an example."""
    for command in (["cache"], ["cache", "stats"], ["cache", "clear"]):
        result = cli(*command, "--help")
        assert result.exit_code == 0
        assert "Example: `contentgen cache" in result.output


def test_installed_command_from_another_folder(tmp_path: Path) -> None:
    """The `contentgen` script: stats and clear on a real folder, run outside the repository."""
    fill(tmp_path / "cache")
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    script = Path(sys.executable).with_name("contentgen")
    env = {k: v for k, v in os.environ.items() if k not in OPENAI_VARS}
    env["CONTENTGEN_CACHE_DIR"] = str(tmp_path / "cache")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), "cache", *args],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    stats = run("stats", "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["entries"] == 4
    cleared = run("clear")
    assert cleared.returncode == 0, cleared.stderr
    assert "Removed 4 entries" in cleared.stdout
    assert json.loads(run("stats", "--json").stdout)["entries"] == 0
    assert list(workdir.iterdir()) == []


def test_library_clear_keeps_other_scopes(tmp_path: Path) -> None:
    """``clear_cache`` with a scope leaves every other scope's entries readable."""
    sim, live_a, _ = fill(tmp_path / "c")
    assert [(s.scope, s.entries) for s in clear_cache(tmp_path / "c", scope=sim)] == [(sim, 2)]
    with ResponseCache(tmp_path / "c", scope=live_a) as cache:
        assert cache.get(response_cache_key({**BODY, "max_output_tokens": 1})) == RESULT

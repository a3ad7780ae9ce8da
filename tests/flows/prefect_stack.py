"""One real Prefect stack per test session, shared by tests/flows and tests/browser.

The stack is what a user runs: ``prefect server start`` (its own PREFECT_HOME and SQLite
database in a temp folder, analytics off), the simulator in-process, a migrated SQLite job
database, and ``contentgen serve`` in a subprocess serving the deployments against them. It
starts on first use and stops when pytest ends (``config.add_cleanup``), so however many test
folders ask for it, the session pays the ~10 s server start once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from pipeline.db.engine import make_engine, session_factory
from pipeline.db.migrate import upgrade
from pipeline.db.queue import enqueue
from pipeline.intake.reader import ArticleIn
from pipeline.simulator.server import SimulatorServer
from tests.flows.support import REPO

SERVER_START_TIMEOUT_S = 90.0
SERVE_READY_TIMEOUT_S = 90.0
TIMEZONE = "Europe/Berlin"


def _half_a_day_away() -> str:
    """A daily time twelve hours from now in ``TIMEZONE``: the served nightly schedule must not
    fire during the tests (a fixed 01:30 once started a real nightly run in the middle of a
    test session at 00:30 UTC, and it took a test's jobs). Never the default ``0 2``, so a test
    sees the setting reach Prefect."""
    at = dt.datetime.now(ZoneInfo(TIMEZONE)) + dt.timedelta(hours=12)
    minute = 1 if (at.hour, at.minute) == (2, 0) else at.minute
    return f"{minute} {at.hour} * * *"


NIGHTLY_CRON = _half_a_day_away()
TOKEN_LIMIT = "contentgen-openai-tokens"
TOKEN_LIMIT_SLOTS = 100_000
TOKEN_LIMIT_DECAY = 0.01  # slow, so the slots a run took are still visible when it ends
FLOW_CHUNK_SIZE = 4
LABEL_REFRESH_S = 1.0

_KEY = pytest.StashKey["PrefectStack"]()

_WORDS = [
    "council",
    "budget",
    "river",
    "bridge",
    "school",
    "vote",
    "market",
    "energy",
    "harbour",
    "museum",
    "festival",
    "rail",
    "hospital",
    "library",
    "election",
    "weather",
    "farmers",
    "tourism",
    "housing",
    "transport",
]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes] | None, timeout_s: float = 15.0) -> None:
    """SIGTERM the process group we started (the process and its flow-run children)."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout_s)


def article(label: str, n: int) -> ArticleIn:
    """A small, deterministic article (a few hundred tokens)."""
    words = [_WORDS[(n * 7 + i * 3) % len(_WORDS)] for i in range(180)]
    body = " ".join(words).capitalize() + "."
    return ArticleIn.model_validate(
        {"id": f"{label}-{n}", "title": f"{label} story {n}", "body": body, "section": "local"}
    )


@dataclass
class PrefectStack:
    """A Prefect server, the simulator, a job database and ``contentgen serve``."""

    root: Path
    port: int = field(default_factory=free_port)
    server: subprocess.Popen[bytes] | None = None
    serve: subprocess.Popen[bytes] | None = None
    simulator: SimulatorServer | None = None
    settings_context: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    startup_s: dict[str, float] = field(default_factory=dict)
    # Variables added to (or overriding) the environment of `contentgen serve`.
    extra_env: dict[str, str] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def ui_url(self) -> str:
        """The Prefect UI."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The Prefect API (PREFECT_API_URL)."""
        return f"{self.ui_url}/api"

    @property
    def delivery_folder(self) -> Path:
        """The drop folder the served deliver flow writes approved texts to."""
        return self.root / "cms-drop"

    @property
    def database_url(self) -> str:
        """The job database the served flows use."""
        return f"sqlite:///{self.root / 'jobs.db'}"

    def log(self, name: str) -> Path:
        """Where a process of the stack writes its output."""
        return self.root / f"{name}.log"

    def diagnostics(self) -> str:
        """The end of the server's and serve's logs (for assertion messages)."""
        return (
            f"--- prefect server ---\n{_tail(self.log('server'))}\n"
            f"--- contentgen serve ---\n{_tail(self.log('serve'), 80)}"
        )

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = self.log(name).open("wb")
        self._logs.append(out)
        return subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _base_env(self, home: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTENTGEN_"))}
        home_dir = self.root / home
        home_dir.mkdir(exist_ok=True)
        env.update(
            PREFECT_HOME=str(home_dir),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        )
        return env

    def start(self) -> PrefectStack:
        """Start everything; returns once the deployments are registered and served."""
        t0 = time.monotonic()
        upgrade(self.database_url)
        self.simulator = SimulatorServer(latency_scale=0).start()

        env = self._base_env("server-home")
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = (
            f"sqlite+aiosqlite:///{self.root / 'server-home' / 'prefect.db'}"
        )
        env["PREFECT_UI_API_URL"] = self.api_url  # the UI assumes port 4200 otherwise
        prefect = str(Path(sys.executable).with_name("prefect"))
        self.server = self._spawn(
            "server",
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env,
        )
        self._wait_healthy()
        self.startup_s["prefect server"] = time.monotonic() - t0

        from prefect.settings import PREFECT_API_URL, temporary_settings

        self.settings_context.enter_context(temporary_settings({PREFECT_API_URL: self.api_url}))
        self._create_token_limit()

        t1 = time.monotonic()
        env = self._base_env("serve-home")
        env.update(
            PREFECT_API_URL=self.api_url,
            PREFECT_RUNNER_POLL_FREQUENCY="1",
            CONTENTGEN_DATABASE_URL=self.database_url,
            CONTENTGEN_CONFIG_DIR=str(REPO / "config"),
            CONTENTGEN_CACHE_DIR=str(self.root / "response-cache"),
            CONTENTGEN_TIMEZONE=TIMEZONE,
            CONTENTGEN_NIGHTLY_CRON=NIGHTLY_CRON,
            # Jobs per chunk task: the worker's setting, not a form field. Small, so a test's
            # few jobs take more than one chunk.
            CONTENTGEN_FLOW_CHUNK_SIZE=str(FLOW_CHUNK_SIZE),
            # The forms' offered batch labels refresh every second, so a test sees a new one.
            CONTENTGEN_LABEL_REFRESH_S=str(LABEL_REFRESH_S),
            OPENAI_BASE_URL=self.simulator.base_url,
            OPENAI_API_KEY="sk-test",
            # The deliver flow (run after each nightly) drops approved texts here.
            CONTENTGEN_DELIVERY_FOLDER=str(self.delivery_folder),
        )
        env.update(self.extra_env)
        contentgen = str(Path(sys.executable).with_name("contentgen"))
        self.serve = self._spawn("serve", [contentgen, "serve"], env)
        self._wait_served()
        self.startup_s["contentgen serve"] = time.monotonic() - t1
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.server is not None
            if self.server.poll() is not None:
                raise RuntimeError(f"prefect server exited:\n{self.diagnostics()}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prefect server not healthy in time:\n{self.diagnostics()}")

    def _create_token_limit(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

        with get_client(sync_client=True) as client:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(
                    name=TOKEN_LIMIT,
                    limit=TOKEN_LIMIT_SLOTS,
                    slot_decay_per_second=TOKEN_LIMIT_DECAY,
                )
            )

    def _wait_served(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        from flows.deployments import ADHOC, COST_REPORT, DELIVER, NIGHTLY

        deadline = time.monotonic() + SERVE_READY_TIMEOUT_S
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                assert self.serve is not None
                if self.serve.poll() is not None:
                    raise RuntimeError(f"contentgen serve exited:\n{self.diagnostics()}")
                try:
                    for name in (NIGHTLY, ADHOC, COST_REPORT, DELIVER):
                        client.read_deployment_by_name(name)
                    return
                except ObjectNotFound:
                    time.sleep(0.3)
        raise RuntimeError(f"deployments not served in time:\n{self.diagnostics()}")

    def enqueue(self, label: str, articles: int, tasks: list[str]) -> None:
        """Enqueue ``articles`` sample articles for ``tasks`` under batch label ``label``."""
        engine = make_engine(self.database_url)
        try:
            with session_factory(engine)() as session:
                enqueue(
                    session, [article(label, n) for n in range(articles)], tasks, batch_label=label
                )
        finally:
            engine.dispose()

    def close(self) -> None:
        """Stop serve, the server and the simulator (in that order), close the logs."""
        _stop(self.serve)
        _stop(self.server)
        if self.simulator is not None:
            self.simulator.stop()
        self.settings_context.close()
        for out in self._logs:
            out.close()


def shared_stack(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> PrefectStack:
    """The session's stack, started on first use and stopped when pytest ends."""
    stack = config.stash.get(_KEY, None)
    if stack is None:
        stack = PrefectStack(tmp_path_factory.mktemp("prefect-stack"))
        config.stash[_KEY] = stack
        config.add_cleanup(stack.close)
        try:
            stack.start()
        except BaseException:
            stack.close()
            raise
    if stack.serve is None or stack.serve.poll() is not None:
        pytest.fail(f"the Prefect stack is not running:\n{stack.diagnostics()}")
    return stack


def flow_run_artifacts(flow_run_id: Any) -> dict[str, Any]:
    """The artifacts of a flow run, by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {a.key: a for a in artifacts}

"""Running the simulator: in-process on a background thread (tests, demos) or in the foreground.

In-process::

    with SimulatorServer(SimulatorConfig(latency_scale=0)) as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key="sk-test")
        ...
        sim.state.clock.advance(600)      # or sim.advance(600)
        print(sim.ledger()["totals"]["cost_usd"])
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from pipeline.simulator.app import create_app
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.state import SimulatorState

T = TypeVar("T")
_START_TIMEOUT_S = 30.0


async def start_site(state: SimulatorState, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start the app on ``host:port`` (0: a free port); returns the runner and the bound port."""
    runner = web.AppRunner(create_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    server = site._server  # aiohttp exposes no public accessor for the bound port
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)


class SimulatorServer:
    """The simulator on its own thread and event loop; use as a context manager.

    ``base_url`` ends in ``/v1`` (pass it to ``openai.OpenAI(base_url=...)``); ``state`` is the
    live ``SimulatorState`` (ledger, clock, caches). It listens on ``port`` (default 0: a free
    port, whatever the config says); keyword ``overrides`` replace config fields.
    """

    def __init__(
        self, config: SimulatorConfig | None = None, *, port: int = 0, **overrides: Any
    ) -> None:
        base = (config or SimulatorConfig()).model_dump()
        self.config = SimulatorConfig.model_validate({**base, **overrides, "port": port})
        self.state = SimulatorState(self.config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def host(self) -> str:
        """The interface the server listens on."""
        return self.config.host

    @property
    def root_url(self) -> str:
        """``http://host:port`` (the admin hooks live under ``/_sim/``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://host:port/v1``."""
        return f"{self.root_url}/v1"

    def start(self) -> SimulatorServer:
        """Start the loop thread and the HTTP server; returns self once it accepts requests."""
        if self._thread is not None:
            return self
        ready: Future[int] = Future()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                runner, port = loop.run_until_complete(
                    start_site(self.state, self.config.host, self.config.port)
                )
            except BaseException as exc:
                ready.set_exception(exc)
                loop.close()
                return
            self._runner = runner
            ready.set_result(port)
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="contentgen-simulator", daemon=True)
        self._thread.start()
        self.port = ready.result(timeout=_START_TIMEOUT_S)
        return self

    def stop(self) -> None:
        """Stop the server and join its thread (idempotent)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=_START_TIMEOUT_S)
        self._thread = None
        self._loop = None

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop and return its result (safe for state changes)."""
        loop = self._loop
        if loop is None:
            return fn()

        async def wrapper() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), loop).result(timeout=_START_TIMEOUT_S)

    def ledger(self) -> dict[str, Any]:
        """The ledger snapshot (``SimulatorState.snapshot``)."""
        return self.call(self.state.snapshot)

    def reset(self) -> None:
        """Clear ledger, caches, rate buckets, faults, stored responses and batches."""
        self.call(self.state.reset)

    def script(self, *faults: str) -> None:
        """Queue one-shot faults for the next requests (see ``faults``)."""
        self.call(lambda: self.state.faults.script(list(faults)))

    def configure(self, **changes: Any) -> SimulatorConfig:
        """Change runtime knobs (fault rates, limits, latency...)."""
        return self.call(lambda: self.state.configure(changes))

    def advance(self, seconds: float) -> None:
        """Move simulated time forward."""
        self.state.clock.advance(seconds)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def serve_forever(
    config: SimulatorConfig, on_ready: Callable[[str], None] | None = None
) -> None:
    """Run the simulator in the current loop until cancelled (the CLI's ``simulate``)."""
    state = SimulatorState(config)
    runner, port = await start_site(state, config.host, config.port)
    if on_ready is not None:
        on_ready(f"http://{config.host}:{port}/v1")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()

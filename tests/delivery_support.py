"""Delivery tests' parts: generated and approved outputs, and a real webhook receiver.

The receiver is an HTTP server in a thread that does what a careful CMS does: it verifies
every signature with the OpenAI SDK's own Standard Webhooks verifier (an implementation that
is not ours), processes each ``webhook-id`` once and answers repeats with 200 without
processing them again, and can answer 500 to chosen ids for their first sends.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
from sqlalchemy import select

from pipeline.db import Delivery, make_engine, session_factory
from pipeline.review import ReviewFilter, decide, list_outputs
from pipeline.settings import Settings
from tests.engine_support import engine_settings, run_engine, seed, simulator

SECRET = "whsec_" + base64.b64encode(b"contentgen-test-signing-key-32by").decode()


def generate(url: str, tmp_path: Path, *, n: int, tasks: tuple[str, ...]) -> Settings:
    """``n`` sample articles' ``tasks`` generated through the simulator; the settings used."""
    engine = make_engine(url)
    try:
        seed(engine, list(tasks), n=n)
        with simulator(obey_rate=1.0, hallucination_rate=0.0) as sim:
            settings = engine_settings(url, sim, tmp_path)
            run_engine(settings)
    finally:
        engine.dispose()
    return settings


def approve_all(url: str, *, editor: str = "ana") -> int:
    """Approve every output waiting for review, one decision (and commit) each; the count."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            outputs = list_outputs(session, ReviewFilter())
            for output in outputs:
                decide(session, output, "approved", editor=editor)
                session.commit()
        return len(outputs)
    finally:
        engine.dispose()


def outbox(url: str) -> list[Delivery]:
    """Every outbox row, by id."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return list(session.scalars(select(Delivery).order_by(Delivery.id)))
    finally:
        engine.dispose()


@dataclass
class Receiver:
    """What the receiver saw (guarded by ``lock``)."""

    secret: str = SECRET
    delay_s: float = 0.0
    fail_first: dict[str, int] = field(default_factory=dict)  # id -> 500s still to answer
    fail_every: int = 0  # ids whose hash % fail_every == 0 answer 500 to their first 2 sends
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    bad_signatures: int = 0
    failures_sent: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)  # 2xx answers per id
    processed: dict[str, dict[str, Any]] = field(default_factory=dict)
    url: str = ""

    @property
    def repeats(self) -> int:
        """Sends of an id after the one that was processed (dropped as repeats)."""
        with self.lock:
            return sum(n - 1 for n in self.accepted.values())

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        verifier = openai.OpenAI(api_key="unused", webhook_secret=self.secret).webhooks
        try:
            verifier.verify_signature(body, headers)
        except Exception:
            with self.lock:
                self.bad_signatures += 1
            return 401
        message_id = headers["webhook-id"]
        with self.lock:
            self.requests += 1
            if self.fail_every and message_id not in self.fail_first:
                due = int(message_id.removeprefix("msg_")[:8], 16) % self.fail_every == 0
                self.fail_first[message_id] = 2 if due else 0
            if self.fail_first.get(message_id, 0) > 0:
                self.fail_first[message_id] -= 1
                self.failures_sent[message_id] += 1
                return 500
            if message_id not in self.processed:
                self.processed[message_id] = json.loads(body)
            self.accepted[message_id] += 1
        if self.delay_s:
            time.sleep(self.delay_s)  # the answer is late: a kill now leaves the send unrecorded
        return 200


@contextmanager
def receiver(**options: Any) -> Iterator[Receiver]:
    """A running ``Receiver`` on 127.0.0.1 (its ``url``), stopped at the end."""
    state = Receiver(**options)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = state.handle(headers, body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a sender killed mid-request leaves a broken pipe: what the test is about

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/contentgen"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

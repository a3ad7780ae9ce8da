"""Local receivers for alert tests: an HTTP webhook receiver and a tiny SMTP sink, both real
servers on 127.0.0.1 that record what they were sent."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Received:
    """One webhook request: its headers and raw body."""

    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """An HTTP server recording every POST; answers ``status``."""

    received: list[Received] = field(default_factory=list)
    status: int = 200
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Where to POST (the path plays the Slack URL's secret part)."""
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/secret-part"


@contextmanager
def webhook_receiver(status: int = 200) -> Iterator[WebhookReceiver]:
    """A running ``WebhookReceiver``; stopped afterwards."""
    receiver = WebhookReceiver(status=status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            receiver.received.append(Received(dict(self.headers.items()), body))
            self.send_response(receiver.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mail:
    """One message the SMTP sink accepted."""

    sender: str
    recipients: list[str]
    data: str


@dataclass
class SmtpSink:
    """What the sink received, and its port."""

    port: int = 0
    mails: list[Mail] = field(default_factory=list)


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for ``smtplib.send_message``: EHLO/HELO, MAIL, RCPT, DATA."""

    def handle(self) -> None:
        sink: SmtpSink = self.server.sink  # type: ignore[attr-defined]
        self._say("220 sink ESMTP")
        sender, recipients = "", []
        while line := self.rfile.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self._say("250-sink" if verb == "EHLO" else "250 sink")
                if verb == "EHLO":
                    self._say("250 8BITMIME")
            elif verb == "MAIL":
                sender = command.split(":", 1)[1].strip().strip("<>").split(">")[0]
                self._say("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                self._say("250 OK")
            elif verb == "DATA":
                self._say("354 end with .")
                lines = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(data.decode())
                sink.mails.append(Mail(sender, recipients, "".join(lines)))
                sender, recipients = "", []
                self._say("250 OK queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("250 OK")

    def _say(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    """A running SMTP sink on 127.0.0.1; stopped afterwards."""
    sink = SmtpSink()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.daemon_threads = True
    server.sink = sink  # type: ignore[attr-defined]
    sink.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


def write_config(folder: Path, alerts: str = "", budgets: str = "") -> Path:
    """A copy of the repository's config/ with ``alerts.toml`` and ``budgets.toml`` added."""
    import shutil

    from tests.engine_support import CONFIG_DIR

    target = folder / "config"
    if not target.exists():
        shutil.copytree(CONFIG_DIR, target)
    if alerts:
        (target / "alerts.toml").write_text(alerts)
    if budgets:
        (target / "budgets.toml").write_text(budgets)
    return target

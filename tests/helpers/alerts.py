"""Real receivers for alert sinks: an HTTP server (webhooks) and an SMTP server (email),
each on 127.0.0.1 in this process, recording what they got."""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from helpers.servers import LOCALHOST, free_port

__all__ = ["Inbox", "Mailbox", "smtp_server", "webhook_server"]


@dataclass
class Inbox:
    """What the webhook server received; ``status`` sets its answer per path."""

    url: str
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [b for p, b in self.posts if p == path]


@contextmanager
def webhook_server() -> Iterator[Inbox]:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 recording each POST's JSON body by path;
    a path set in ``inbox.status`` answers that status (and is recorded too)."""
    inbox = Inbox(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(size) or b"null")
            assert self.headers.get("Content-Type") == "application/json"
            with inbox.lock:
                inbox.posts.append((self.path, body))
                code = inbox.status.get(self.path, 200)
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
    inbox.url = f"http://{LOCALHOST}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield inbox
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    """What the SMTP server received."""

    port: int
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)


@contextmanager
def smtp_server(auth: tuple[str, str] | None = None) -> Iterator[Mailbox]:
    """aiosmtpd's real SMTP server on 127.0.0.1 (no TLS), keeping each message; with
    ``auth``, it asks for that user and password (AUTH over plain text allowed)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    box = Mailbox(port=free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            box.messages.append(
                (
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    message_from_bytes(envelope.content, policy=policy.default),
                )
            )
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = (
            isinstance(data, LoginPassword)
            and auth is not None
            and (data.login.decode(), data.password.decode()) == auth
        )
        return AuthResult(success=ok)

    kwargs: dict[str, Any] = {}
    if auth is not None:
        kwargs = {
            "authenticator": authenticator,
            "auth_require_tls": False,
            "auth_required": True,
        }
    with warnings.catch_warnings():  # AUTH without TLS: on loopback, on purpose
        warnings.simplefilter("ignore")
        controller = Controller(Handler(), hostname=LOCALHOST, port=box.port, **kwargs)
        controller.start()
    try:
        yield box
    finally:
        controller.stop()

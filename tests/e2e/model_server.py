"""A scripted model server on 127.0.0.1 for the end-to-end suite.

The real agent CLIs are pointed at it instead of their vendors' services. One server speaks
every wire format the CLIs use; each format is a module under `protocols/` that registers its
routes. The script is stateless, so parallel agents can share one server: a conversation that
has no tool result yet gets the scripted shell call; one that has a tool result gets the final
answer. Every request is recorded (`server.requests`) so a test can show what a CLI sent.

Every model reply reports `server.usage` (tokens in, tokens out; small and unlike any other
number, so a CLI's own count of the prompt is never taken for it) and the server adds up what it
reported (`server.served()`): a CLI that records the usage it was told must record exactly that.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A route: (method, path prefix) -> handler(server, request) -> None (it writes the reply).
Handler = Callable[["ScriptedModel", "Request"], None]


@dataclass
class Script:
    """What the scripted model does: run `command` with the shell tool, then answer `answer`."""

    command: str
    answer: str = "Done: the change is committed."


@dataclass
class Request:
    """One HTTP request the server received, and the means to answer it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    handler: BaseHTTPRequestHandler = field(repr=False)

    def json(self) -> Any:
        """The body parsed as JSON ({} when empty or not JSON)."""
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            return {}

    def reply(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        """Send a whole reply: JSON for dicts and lists, else bytes or text as given."""
        data = json.dumps(payload).encode() if isinstance(payload, (dict, list)) else (
            payload if isinstance(payload, bytes) else str(payload).encode())
        self.handler.send_response(status)
        self.handler.send_header("Content-Type", content_type)
        self.handler.send_header("Content-Length", str(len(data)))
        self.handler.end_headers()
        self.handler.wfile.write(data)

    def stream(self, events: list[tuple[str | None, Any]]) -> None:
        """Send server-sent events: (event name or None, JSON payload or raw string) each."""
        self.handler.send_response(200)
        self.handler.send_header("Content-Type", "text/event-stream")
        self.handler.send_header("Cache-Control", "no-cache")
        self.handler.send_header("Connection", "close")
        self.handler.end_headers()
        for name, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            chunk = (f"event: {name}\n" if name else "") + f"data: {text}\n\n"
            self.handler.wfile.write(chunk.encode())
            self.handler.wfile.flush()
        self.handler.close_connection = True


class ScriptedModel:
    """The server: start() binds 127.0.0.1 on a free port; `url` is its base address."""

    def __init__(self, script: Script, routes: dict[tuple[str, str], Handler]) -> None:
        self.script = script
        self.routes = routes
        self.requests: list[Request] = []
        self.usage = (17, 3)  # tokens in, tokens out: what each model reply reports
        self.reports: list[tuple[Request, int, int]] = []  # each reply that reported usage, and what it said
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port>"""
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def report(self, req: Request) -> tuple[int, int]:
        """The usage the reply to `req` reports, recorded in `reports`."""
        with self._lock:
            self.reports.append((req, *self.usage))
        return self.usage

    def served(self, which: Callable[[Request], bool] = lambda req: True) -> tuple[int, int]:
        """The sums of the tokens in and out the replies reported (only to the requests `which` accepts)."""
        with self._lock:
            chosen = [(i, o) for req, i, o in self.reports if which(req)]
        return sum(i for i, _ in chosen), sum(o for _, o in chosen)

    def start(self) -> ScriptedModel:
        """Serve in a background thread."""
        model = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, self)
                with model._lock:
                    model.requests.append(req)
                path = self.path.split("?", 1)[0]
                for (method, prefix), fn in sorted(model.routes.items(), key=lambda kv: -len(kv[0][1])):
                    if method == self.command and path.startswith(prefix):
                        fn(model, req)
                        return
                req.reply(404, {"error": {"message": f"scripted model: no route for {self.command} {path}"}})

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

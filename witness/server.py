"""The witness's HTTP interface (stdlib ``http.server``; keep-alive, bounded bodies).

``POST /add-checkpoint`` and ``GET /<sha256 hex of origin>/checkpoint`` as in C2SP
``tlog-witness``; ``GET /vkey`` (an addition) returns the witness's verifier key so a verifier can
fetch it once and pin it.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from witness.core import TEXT, Witness

MAX_BODY = 64 * 1024
log = logging.getLogger("witness")


def make_server(witness: Witness, host: str, port: int) -> ThreadingHTTPServer:
    """A threaded HTTP server answering the witness protocol (not started)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, ctype: str, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            if self.path != "/add-checkpoint":
                self._send(404, TEXT, "not found\n")
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._send(411, TEXT, "Content-Length required\n")
                return
            if not 0 <= length <= MAX_BODY:
                self.close_connection = True
                self._send(413, TEXT, f"body larger than {MAX_BODY} bytes\n")
                return
            self._send(*witness.add_checkpoint(self.rfile.read(length)))

        def do_GET(self) -> None:
            if self.path == "/vkey":
                self._send(200, TEXT, witness.vkey + "\n")
                return
            parts = self.path.strip("/").split("/")
            if len(parts) == 2 and parts[1] == "checkpoint":
                note = witness.checkpoint(parts[0])
                if note is not None:
                    self._send(200, TEXT, note)
                    return
            self._send(404, TEXT, "not found\n")

        def log_message(self, format: str, *args: object) -> None:
            log.info("%s " + format, self.address_string(), *args)

    return ThreadingHTTPServer((host, port), Handler)


def serve_in_thread(witness: Witness, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Start a server in a daemon thread (tests, benchmarks); ``server.shutdown()`` stops it."""
    server = make_server(witness, host, port)
    threading.Thread(target=server.serve_forever, daemon=True, name="witness-http").start()
    return server

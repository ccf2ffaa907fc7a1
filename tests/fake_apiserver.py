"""A stand-in for kube-apiserver's TLS front: the apiserver's certificate, client certificates
required and checked against the cluster CA, GET /version answered. Tests use it in-process; run
as a module it serves several addresses (e.g. inside a network namespace) until killed:

    python -m tests.fake_apiserver CLIENT_CA ADDRESS:PORT=CERT,KEY ...
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.1", "platform": "linux/amd64"}


class VersionHandler(http.server.BaseHTTPRequestHandler):
    """Answers GET /version like kube-apiserver; 404 for anything else."""

    def do_GET(self) -> None:
        server = cast(FakeApiserver, self.server)
        path = self.path.split("?")[0]  # kubectl adds ?timeout=
        server.paths.append(path)
        body: dict[str, Any]
        if path == "/version":
            status, body = 200, dict(VERSION)
        else:
            status, body = 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeApiserver(http.server.HTTPServer):
    """HTTPS with the apiserver's certificate, client certificates required and checked against ``client_ca``."""

    def __init__(self, cert: Path, key: Path, client_ca: Path, address: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.context.load_verify_locations(client_ca)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.paths: list[str] = []
        self.refused: list[OSError] = []
        self.clients: list[dict[str, Any]] = []
        super().__init__(address, VersionHandler)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        sock.settimeout(10)
        try:
            tls = self.context.wrap_socket(sock, server_side=True)  # handshake now; closes the socket on failure
        except OSError as exc:
            self.refused.append(exc)
            raise
        self.clients.append(cast(dict[str, Any], tls.getpeercert() or {}))
        return tls, address


@contextlib.contextmanager
def serving(cert: Path, key: Path, client_ca: Path) -> Iterator[FakeApiserver]:
    """A FakeApiserver on a loopback port, served from a thread for the block's duration."""
    server = FakeApiserver(cert, key, client_ca)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def main(argv: list[str]) -> None:
    client_ca, *listeners = argv
    servers = []
    for listener in listeners:
        address, _, files = listener.partition("=")
        host, _, port = address.rpartition(":")
        cert, key = files.split(",")
        servers.append(FakeApiserver(Path(cert), Path(key), Path(client_ca), (host, int(port))))
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])

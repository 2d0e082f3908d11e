"""The https:// source through the environment's proxy (a CONNECT tunnel), as the _http module
docstring promises ("the proxy of the environment (https_proxy, ...) as requests honours it").
From an independent review: the deadline-bound response shut the tunnel's socket when `_tunnel`
closed the proxy's answer, before the TLS handshake; the test failed before the fix."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from pathlib import Path
from typing import Iterator

import pytest

from nas_agent.sources import Fetched, open_source
from tests.agent.source_servers import StoreServer

AGENT = "nas-01"


class _Tunnel(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            data += chunk
        line = data.split(b"\r\n", 1)[0].decode()
        method, target, _ = line.split(" ")
        assert method == "CONNECT"
        host, port = target.rsplit(":", 1)
        self.server.connects.append(target)  # type: ignore[attr-defined]
        upstream = socket.create_connection((host, int(port)), timeout=10)
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while True:
                    chunk = src.recv(65536)
                    if not chunk:
                        break
                    dst.sendall(chunk)
            except OSError:
                pass
            finally:
                for end in (src, dst):
                    with contextlib.suppress(OSError):
                        end.shutdown(socket.SHUT_RDWR)

        other = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
        other.start()
        pump(self.request, upstream)
        other.join(10)
        upstream.close()


class _Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def proxy() -> Iterator[_Proxy]:
    server = _Proxy(("127.0.0.1", 0), _Tunnel)
    server.connects = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreServer]:
    root = tmp_path / "store"
    (root / "agents" / AGENT).mkdir(parents=True)
    (root / "agents" / AGENT / "index.json").write_bytes(b'{"entries": []}')
    with StoreServer(root, tmp_path / "tls") as running:
        yield running


def test_an_https_source_is_fetched_through_the_https_proxy(store, proxy, monkeypatch):
    for name in ("no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{proxy.server_address[1]}")
    with open_source(store.url, AGENT, ca_file=str(store.ca_file)) as source:
        got = source.fetch("index.json")
        again = source.fetch("index.json")  # the kept connection through the tunnel
    assert proxy.connects, "the proxy was not used"
    assert isinstance(got, Fetched) and got.body == b'{"entries": []}'
    assert isinstance(again, Fetched) and again.body == got.body

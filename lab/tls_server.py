"""An HTTP server speaking TLS on loopback in a thread: what the lab's HTTPS stand-ins share.

server = TlsServer(Handler, cert, key)     # serving from here on
url = f"https://127.0.0.1:{server.port}/"
server.stop()
"""

from __future__ import annotations

import http.server
import ssl
import threading
from pathlib import Path

from lab.ports import LOOPBACK


class TlsServer:
    def __init__(
        self, handler: type[http.server.BaseHTTPRequestHandler], cert: Path, key: Path
    ) -> None:
        httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), handler)
        httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        # A short poll interval: shutdown() waits for the loop to notice it.
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

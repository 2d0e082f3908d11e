"""An HTTPS front for Pebble that adds ACME Renewal Information (RFC 9773), which Debian's
Pebble 2.4 lacks.

It serves Pebble's directory with one more entry, `renewalInfo`, pointing at itself, and answers
`GET <renewalInfo>/<CertID>` with the window the test sets (and a Retry-After). Every other ACME
request goes to Pebble directly, as the directory's other URLs are Pebble's own. Clients verify
it with `ca_bundle`, which also holds Pebble's CA.
"""

from __future__ import annotations

import json
import ssl
import threading
from datetime import datetime
from pathlib import Path

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from .ports import LOOPBACK
from .tls import make_ca_and_server_cert


class AriFront:
    def __init__(self, workdir: Path, pebble) -> None:
        self.pebble = pebble
        self.window: tuple[datetime, datetime] | None = None
        self.retry_after = 3600
        self.asked: list[str] = []  # CertIDs asked for, in order
        ca, cert, key = make_ca_and_server_cert(Path(workdir))
        self.ca_bundle = Path(workdir) / "bundle.pem"
        self.ca_bundle.write_text(ca.read_text() + Path(pebble.ca_bundle).read_text())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server = make_server(LOOPBACK, 0, self._app, ssl_context=context, threaded=True)
        self.url = f"https://{LOOPBACK}:{self._server.server_port}"
        self.directory_url = f"{self.url}/dir"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> AriFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @Request.application
    def _app(self, request: Request) -> Response:
        if request.path == "/dir":
            directory = requests.get(
                self.pebble.directory_url, verify=str(self.pebble.ca_bundle), timeout=10
            ).json()
            directory["renewalInfo"] = f"{self.url}/renewal-info"
            return Response(json.dumps(directory), content_type="application/json")
        if request.path.startswith("/renewal-info/") and self.window is not None:
            self.asked.append(request.path.rsplit("/", 1)[1])
            start, end = self.window
            body = {"suggestedWindow": {"start": start.isoformat(), "end": end.isoformat()}}
            return Response(
                json.dumps(body),
                content_type="application/json",
                headers={"Retry-After": str(self.retry_after)},
            )
        return Response("not found", status=404)

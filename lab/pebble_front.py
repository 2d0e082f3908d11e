"""An HTTPS front for Pebble that hides challenge types: a CA that does not offer dns-persist-01.

Pebble 2.10.1 offers dns-01, dns-account-01 and dns-persist-01 for every DNS identifier. This
front passes every request through to Pebble unchanged, the Host header included, so Pebble's
own URLs (directory, orders, authorizations, the account) all name the front and JWS URLs match;
from each answer carrying `challenges` it removes the hidden types. It serves Pebble's TLS
certificate: clients verify it with `pebble.ca_bundle`. `requests` records what went through:
method, path, the JWS payload and the answer's status.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from pathlib import Path
from typing import Any, Sequence

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from .ports import LOOPBACK

# Not passed on: they describe one hop, or a body this front may have rewritten.
_HOP_HEADERS = {"connection", "content-length", "content-encoding", "transfer-encoding"}


class PebbleFront:
    def __init__(self, pebble, hide: Sequence[str] = ("dns-persist-01",)) -> None:
        self.pebble = pebble
        self.hide = tuple(hide)
        self.requests: list[dict[str, Any]] = []
        tls = Path(pebble.workdir) / "tls"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls / "server-cert.pem", tls / "server-key.pem")
        self._server = make_server(LOOPBACK, 0, self._app, ssl_context=context, threaded=True)
        self.url = f"https://{LOOPBACK}:{self._server.server_port}"
        self.directory_url = f"{self.url}/dir"
        self.ca_bundle = pebble.ca_bundle
        self._upstream = f"https://{pebble.host}:{pebble.port}"
        self._session = requests.Session()
        self._session.verify = str(pebble.ca_bundle)
        self._session.trust_env = False  # proxy variables must not reroute loopback requests
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> PebbleFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._session.close()

    def posted(self, path: str) -> list[dict[str, Any]]:
        """The POSTs to `path` that went through, in order."""
        return [r for r in self.requests if r["method"] == "POST" and r["path"] == path]

    @Request.application
    def _app(self, request: Request) -> Response:
        body = request.get_data()
        path = request.full_path.rstrip("?")
        with self._lock:  # one request at a time: Pebble's nonces are handed out in order
            upstream = self._session.request(
                request.method,
                self._upstream + path,
                data=body,
                headers={"Host": request.host, "Content-Type": request.content_type or ""},
                allow_redirects=False,
                timeout=30,
            )
        content = upstream.content
        if upstream.headers.get("Content-Type", "").startswith("application/json"):
            content = self._hidden(content)
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "payload": _payload(body),
                "status": upstream.status_code,
            }
        )
        response = Response(content, status=upstream.status_code)
        for name in {k.lower() for k in upstream.raw.headers} - _HOP_HEADERS:
            for value in upstream.raw.headers.getlist(name):
                response.headers.add(name, value)
        return response

    def _hidden(self, content: bytes) -> bytes:
        document = json.loads(content)
        if not isinstance(document, dict) or not isinstance(document.get("challenges"), list):
            return content
        kept = [c for c in document["challenges"] if c.get("type") not in self.hide]
        return json.dumps({**document, "challenges": kept}).encode()


def _payload(body: bytes) -> Any | None:
    """The JSON a JWS body carries: None for no body, "" for POST-as-GET."""
    if not body:
        return None
    encoded = json.loads(body).get("payload", "")
    if not encoded:
        return ""
    return json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))

"""A small stand-in for Cloudflare's v4 API: the zone lookup and DNS-record endpoints certdrop uses.

    with CloudflareFake(("example.test",)) as cf:
        cf.api_url, cf.token                      # for the cloudflare provider
        cf.zone_id("example.test")

Faithful to the documented shapes: every answer is the envelope
`{"success", "errors": [{"code", "message"}], "messages", "result"}`, lists carry `result_info`
(page, per_page, count, total_count, total_pages), and the error codes are Cloudflare's:
6003/6111 for a malformed Authorization header, 10000 "Authentication error" for a token that is
unknown (the real API's status for that is not documented; 401 here) or lacks DNS edit rights (403),
7003 for an unknown zone id, 81058 "An identical record already exists." on a duplicate POST,
81044 "Record does not exist." on DELETE of an unknown id. Served by werkzeug on 127.0.0.1.
"""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from lab.ports import LOOPBACK


class CloudflareFake:
    def __init__(self, zones: tuple[str, ...] = ("example.test",)) -> None:
        self.token = secrets.token_urlsafe(30)
        self.read_only_token = secrets.token_urlsafe(30)  # may read, may not edit DNS
        self._zones = {secrets.token_hex(16): z.rstrip(".").lower() for z in zones}
        self._records: dict[str, dict[str, dict[str, Any]]] = {zid: {} for zid in self._zones}
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.api_url = ""

    def zone_id(self, name: str) -> str:
        return next(zid for zid, z in self._zones.items() if z == name.rstrip(".").lower())

    def __enter__(self) -> CloudflareFake:
        self._server = make_server(LOOPBACK, 0, self._app(), threaded=True)
        self.api_url = f"http://{LOOPBACK}:{self._server.server_port}/client/v4"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _app(self) -> Flask:
        app = Flask("cloudflare_fake")

        @app.before_request
        def authenticate() -> Any:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer ") or not header[7:].strip():
                chain = [{"code": 6111, "message": "Invalid format for Authorization header"}]
                return _fail(400, 6003, "Invalid request headers", error_chain=chain)
            token = header[7:].strip()
            if token not in (self.token, self.read_only_token):
                return _fail(401, 10000, "Authentication error")
            if request.method != "GET" and token != self.token:
                return _fail(403, 10000, "Authentication error")
            return None

        @app.get("/client/v4/zones")
        def zones() -> Any:
            name = request.args.get("name", "").rstrip(".").lower()
            found = [
                {"id": zid, "name": z, "status": "active"}
                for zid, z in self._zones.items()
                if not name or z == name
            ]
            return _page(found)

        @app.get("/client/v4/zones/<zid>/dns_records")
        def list_records(zid: str) -> Any:
            if zid not in self._zones:
                return _no_route(zid)
            wanted = {k: request.args[k] for k in ("type", "name", "content") if k in request.args}
            if "name" in wanted:
                wanted["name"] = wanted["name"].rstrip(".").lower()
            with self._lock:
                found = [
                    r
                    for r in self._records[zid].values()
                    if all(r[k] == v for k, v in wanted.items())
                ]
            return _page(found)

        @app.post("/client/v4/zones/<zid>/dns_records")
        def create_record(zid: str) -> Any:
            if zid not in self._zones:
                return _no_route(zid)
            body = request.get_json(silent=True) or {}
            rtype, content, ttl = body.get("type"), body.get("content"), body.get("ttl", 1)
            name = str(body.get("name", "")).rstrip(".").lower()
            zone = self._zones[zid]
            if not name or not isinstance(content, str) or rtype not in ("TXT", "A", "CNAME"):
                return _fail(400, 9000, "DNS record type, name and content are required")
            if not (ttl == 1 or (isinstance(ttl, int) and 60 <= ttl <= 86400)):
                return _fail(400, 9021, "Invalid TTL. Must be between 60 and 86400, or 1")
            if name != zone and not name.endswith("." + zone):
                name = f"{name}.{zone}"
            with self._lock:
                records = self._records[zid]
                if any(
                    (r["type"], r["name"], r["content"]) == (rtype, name, content)
                    for r in records.values()
                ):
                    return _fail(400, 81058, "An identical record already exists.")
                now = datetime.now(UTC).isoformat()
                record = {
                    "id": secrets.token_hex(16),
                    "zone_id": zid,
                    "zone_name": zone,
                    "name": name,
                    "type": rtype,
                    "content": content,
                    "ttl": ttl,
                    "proxiable": False,
                    "proxied": False,
                    "created_on": now,
                    "modified_on": now,
                }
                records[record["id"]] = record
            return _ok(record)

        @app.delete("/client/v4/zones/<zid>/dns_records/<rid>")
        def delete_record(zid: str, rid: str) -> Any:
            if zid not in self._zones:
                return _no_route(zid)
            with self._lock:
                if self._records[zid].pop(rid, None) is None:
                    return _fail(404, 81044, "Record does not exist.")
            return _ok({"id": rid})

        return app


def _ok(result: Any, **extra: Any) -> Any:
    return jsonify(success=True, errors=[], messages=[], result=result, **extra)


def _fail(status: int, code: int, message: str, **detail: Any) -> Any:
    error = {"code": code, "message": message, **detail}
    return jsonify(success=False, errors=[error], messages=[], result=None), status


def _no_route(zid: str) -> Any:
    message = f"Could not route to /zones/{zid}, perhaps your object identifier is invalid?"
    return _fail(404, 7003, message)


def _page(items: list[dict[str, Any]]) -> Any:
    per_page = max(5, min(int(request.args.get("per_page", 100)), 5000))
    page = max(1, int(request.args.get("page", 1)))
    chunk = items[(page - 1) * per_page : page * per_page]
    total_pages = (len(items) + per_page - 1) // per_page
    info = {
        "page": page,
        "per_page": per_page,
        "count": len(chunk),
        "total_count": len(items),
        "total_pages": total_pages,
    }
    return _ok(chunk, result_info=info)

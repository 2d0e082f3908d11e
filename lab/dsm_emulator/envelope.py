"""DSM's JSON envelope: compact, keys sorted, UTF-8, always HTTP 200 (reference §1)."""

from __future__ import annotations

import json
from typing import Any, Mapping

from flask import Response

CONTENT_TYPE = 'application/json; charset="UTF-8"'


class ApiFailure(Exception):
    """An API-level error: becomes ``{"error":{"code":N[,"errors":{…}]},"success":false}``."""

    def __init__(self, code: int, errors: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"DSM error {code}")
        self.code = code
        self.errors = errors


def dsm_json(obj: Any) -> str:
    # acme.sh's regexes rely on exactly this shape (compact, alphabetical keys, raw UTF-8).
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _response(obj: Any) -> Response:
    return Response(dsm_json(obj).encode("utf-8"), status=200, content_type=CONTENT_TYPE)


def success(data: Mapping[str, Any] | None = None) -> Response:
    body: dict = {"success": True}
    if data is not None:
        body["data"] = data
    return _response(body)


def failure(error: ApiFailure) -> Response:
    err: dict = {"code": error.code}
    if error.errors is not None:
        err["errors"] = error.errors
    return _response({"error": err, "success": False})

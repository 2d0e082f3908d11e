"""AWS Signature Version 4 for the s3:// source's requests (standard library only).

    headers = signed_headers("GET", url, {"If-None-Match": etag}, b"", credentials,
                             region="eu-central-1", now=datetime.now(timezone.utc))

Returns the request's headers plus Host, X-Amz-Date, X-Amz-Content-SHA256 (the body's SHA-256,
signed), X-Amz-Security-Token for temporary credentials, and Authorization. Every header given
is signed. The canonical request is S3's: the path exactly as sent (each key segment already
percent-encoded, never normalised), the query's parameters sorted. The tests check it against
botocore's S3SigV4Auth on generated requests, and moto's server, with its IAM checks on, against
real requests.

Why not a library: requests-aws4auth (small, maintained) signs requests' PreparedRequest objects,
so it brings requests, and importing requests is half of an agent run's time budget on DSM's
Python 3.8 (see `nas_agent.sources._http`); botocore's signer brings botocore.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Mapping
from urllib.parse import parse_qsl, quote, urlsplit

from nas_agent.sources.aws_credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"


def signed_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    *,
    region: str,
    now: datetime,
) -> dict[str, str]:
    """`headers` with the signing headers and Authorization added (`now` must be UTC)."""
    parts = urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{region}/{SERVICE}/aws4_request"
    payload = hashlib.sha256(body).hexdigest()
    signed = {name: value for name, value in headers.items() if name.lower() != "authorization"}
    if not any(name.lower() == "host" for name in signed):
        signed["Host"] = _host(parts.scheme, parts.netloc)
    signed["X-Amz-Date"] = amz_date
    signed["X-Amz-Content-SHA256"] = payload
    if credentials.session_token:
        signed["X-Amz-Security-Token"] = credentials.session_token
    canonical = {name.lower(): " ".join(str(value).split()) for name, value in signed.items()}
    names = ";".join(sorted(canonical))
    request = "\n".join(
        (
            method.upper(),
            parts.path or "/",
            _canonical_query(parts.query),
            "".join(f"{name}:{canonical[name]}\n" for name in sorted(canonical)),
            names,
            payload,
        )
    )
    to_sign = "\n".join((ALGORITHM, amz_date, scope, _hex_sha256(request.encode("utf-8"))))
    signature = hmac.new(
        _signing_key(credentials.secret_access_key, amz_date[:8], region),
        to_sign.encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
    signed["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={names}, Signature={signature}"
    )
    return signed


def _signing_key(secret: str, day: str, region: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (day, region, SERVICE, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def _canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _host(scheme: str, netloc: str) -> str:
    """The Host header http.client sends for `netloc`: without a port that is the default."""
    default = {"http": ":80", "https": ":443"}.get(scheme)
    return netloc[: -len(default)] if default and netloc.endswith(default) else netloc


def _hex_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

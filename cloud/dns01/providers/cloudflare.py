"""Cloudflare DNS through the v4 API with an API token.

Cloudflare stores each TXT value as its own record, so adding one value never touches another:
`add_txt` POSTs a record (an identical one already there, error 81058 or the older 81057, counts
as success), `remove_txt` lists the TXT records at the name and deletes each whose content is our
value. The content comparison is done here, quotes stripped, because Cloudflare may keep TXT
content in quoted form.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import requests

from cloud.dns01.providers import _txt
from cloud.dns01.providers.base import ProviderInfo, Setting, TxtRecord
from cloud.errors import DnsProviderError

log = logging.getLogger(__name__)

NAME = "cloudflare"
DEFAULT_API_URL = "https://api.cloudflare.com/client/v4"
TIMEOUT = 30.0  # seconds per API request
_ALREADY_EXISTS = frozenset({81057, 81058})
_ALREADY_GONE = frozenset({81044})
_PER_PAGE = 100
_MIN_TTL = 60  # the API takes 60..86400, or 1 for "automatic"


class CloudflareProvider:
    def __init__(
        self,
        api_token: str,
        *,
        zone_id: str | None = None,
        api_url: str = DEFAULT_API_URL,
        timeout: float = TIMEOUT,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._zone_id = zone_id
        self._timeout = timeout
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {api_token}"

    def add_txt(self, record: TxtRecord) -> None:
        body = {
            "type": "TXT",
            "name": record.fqdn.rstrip("."),
            "content": record.value,
            "ttl": max(record.ttl, _MIN_TTL),
        }
        path = f"/zones/{self._zone(record)}/dns_records"
        if self._call("POST", path, record, json=body, tolerated=_ALREADY_EXISTS) is not None:
            log.info("cloudflare: added a TXT value at %s", record.fqdn)

    def remove_txt(self, record: TxtRecord) -> None:
        zone_id = self._zone(record)
        for found in self._txt_records(zone_id, record):
            if _txt.unquote(found["content"]) == record.value:
                path = f"/zones/{zone_id}/dns_records/{found['id']}"
                self._call("DELETE", path, record, tolerated=_ALREADY_GONE)
                log.info("cloudflare: removed a TXT value at %s", record.fqdn)

    # --- API ---------------------------------------------------------------------------------

    def _zone(self, record: TxtRecord) -> str:
        if self._zone_id:
            return self._zone_id
        name = record.zone.rstrip(".")
        body = self._call("GET", "/zones", record, params={"name": name})
        for zone in body["result"] if body else ():
            if zone["name"].lower() == name:
                return zone["id"]
        raise DnsProviderError(NAME, record.fqdn, f"no zone named {name} visible to this token")

    def _txt_records(self, zone_id: str, record: TxtRecord) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {
                "type": "TXT",
                "name": record.fqdn.rstrip("."),
                "per_page": _PER_PAGE,
                "page": page,
            }
            body = self._call("GET", f"/zones/{zone_id}/dns_records", record, params=params)
            assert body is not None  # nothing is tolerated on a GET
            found += body["result"]
            if page >= body.get("result_info", {}).get("total_pages", 1):
                return found
            page += 1

    def _call(
        self,
        method: str,
        path: str,
        record: TxtRecord,
        *,
        tolerated: frozenset[int] = frozenset(),
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        """The response body; None when the API answered with one of the `tolerated` codes."""
        try:
            response = self._session.request(
                method, self._api_url + path, timeout=self._timeout, **kwargs
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DnsProviderError(
                NAME,
                record.fqdn,
                f"cannot reach the Cloudflare API ({type(exc).__name__})",
                transient=True,
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.ok and body.get("success", False):
            return body
        errors = body.get("errors") or []
        codes = {e.get("code") for e in errors if isinstance(e, dict)}
        if codes and codes <= tolerated:
            return None
        status = response.status_code
        detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        detail = detail or response.text[:200]
        if status in (401, 403) or 6003 in codes:
            cause = f"Cloudflare refused the API token (HTTP {status}, {detail})"
        else:
            cause = f"Cloudflare API {method} failed (HTTP {status}, {detail})"
        raise DnsProviderError(NAME, record.fqdn, cause, transient=status >= 500 or status == 429)


def _build(values: Mapping[str, Any]) -> CloudflareProvider:
    return CloudflareProvider(
        values["api_token"],
        zone_id=values.get("zone_id"),
        api_url=values["api_url"],
        timeout=values["timeout"],
    )


INFO = ProviderInfo(
    name=NAME,
    summary="Cloudflare DNS through the v4 API with an API token",
    settings=(
        Setting("api_token", "an API token", secret=True),
        Setting("zone_id", "the zone id; found by the zone's name when omitted", required=False),
        Setting("api_url", "the API base URL", required=False, default=DEFAULT_API_URL),
        Setting("timeout", "seconds per API request", required=False, kind=float, default=TIMEOUT),
    ),
    permissions="an API token with Zone > DNS > Edit on the zone, plus Zone > Zone > Read when "
    "zone_id is not set (to find the zone by name)",
    build=_build,
)

"""PowerDNS Authoritative through its HTTP API (`/api/v1/servers/<id>/zones/<zone>`).

The API of PowerDNS 4.x changes whole RRsets only (changetype REPLACE or DELETE), so adding one
value is read-modify-write: read the TXT RRset, add ours, write the set back. Two writers doing
that at once on the same name can lose a value (both read {a}, one writes {a,x}, the other {a,y}).
`add_txt` therefore reads back after writing and merges again if our value was dropped, so
concurrent adds converge; two concurrent removes can still leave one stale value behind.
certdrop adds the apex and wildcard values one after the other, which avoids the race in its own
use. PowerDNS 4.9.12 and 5.0.2 added the EXTEND/PRUNE changetypes that change one record
atomically; Debian 12 ships 4.7, which rejects them, so they are not used. Where atomic changes
matter on an older server, enable its RFC 2136 support (`dnsupdate=yes`, a TSIG key allowed by
`ALLOW-DNSUPDATE-FROM`/`TSIG-ALLOW-DNSUPDATE` metadata) and use the `rfc2136` provider instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote as urlquote

import requests

from cloud.dns01.providers import _txt
from cloud.dns01.providers.base import ProviderInfo, Setting, TxtRecord
from cloud.errors import DnsProviderError

log = logging.getLogger(__name__)

NAME = "powerdns"
# Writes per add_txt before giving up on a writer that keeps replacing the RRset under us.
_MAX_WRITES = 3
TIMEOUT = 10.0  # seconds per API request
SERVER_ID = "localhost"  # the server id in API paths of a PowerDNS Authoritative Server


class PowerDnsProvider:
    def __init__(
        self, api_url: str, api_key: str, server_id: str = SERVER_ID, timeout: float = TIMEOUT
    ) -> None:
        base = api_url.rstrip("/")
        if not base.endswith("/api/v1"):
            base += "/api/v1"
        self._zones_url = f"{base}/servers/{urlquote(server_id, safe='')}/zones"
        self._server_id = server_id
        self._timeout = timeout
        self._session = requests.Session()
        self._session.headers["X-API-Key"] = api_key

    def add_txt(self, record: TxtRecord) -> None:
        for writes in range(_MAX_WRITES + 1):
            values = self._read(record)
            if record.value in values:
                if writes:
                    log.info("powerdns: added a TXT value at %s", record.fqdn)
                return
            if writes < _MAX_WRITES:
                self._replace(record, [*values, record.value])
        raise DnsProviderError(
            NAME,
            record.fqdn,
            f"our TXT value was dropped after {_MAX_WRITES} writes: another writer keeps "
            "replacing this RRset at the same time",
            transient=True,
        )

    def remove_txt(self, record: TxtRecord) -> None:
        values = self._read(record)
        if record.value not in values:
            return
        rest = [v for v in values if v != record.value]
        if rest:
            self._replace(record, rest)
        else:
            self._patch(record, {"name": record.fqdn, "type": "TXT", "changetype": "DELETE"})
        log.info("powerdns: removed a TXT value at %s", record.fqdn)

    # --- API ---------------------------------------------------------------------------------

    def _zone_url(self, record: TxtRecord) -> str:
        return f"{self._zones_url}/{urlquote(record.zone, safe='')}"

    def _read(self, record: TxtRecord) -> list[str]:
        """The values of the TXT RRset at record.fqdn, in the server's order."""
        # Servers that ignore rrset_name/rrset_type (before 4.8) return every RRset: filter here.
        params = {"rrset_name": record.fqdn, "rrset_type": "TXT"}
        zone = self._call("GET", self._zone_url(record), record, params=params).json()
        return [
            _txt.unquote(rr["content"])
            for rrset in zone.get("rrsets", ())
            if rrset["name"].lower() == record.fqdn and rrset["type"] == "TXT"
            for rr in rrset["records"]
        ]

    def _replace(self, record: TxtRecord, values: list[str]) -> None:
        rrset = {
            "name": record.fqdn,
            "type": "TXT",
            "ttl": record.ttl,
            "changetype": "REPLACE",
            "records": [{"content": _txt.quote(v), "disabled": False} for v in values],
        }
        self._patch(record, rrset)

    def _patch(self, record: TxtRecord, rrset: dict[str, Any]) -> None:
        self._call("PATCH", self._zone_url(record), record, json={"rrsets": [rrset]})

    def _call(self, method: str, url: str, record: TxtRecord, **kwargs: Any) -> requests.Response:
        try:
            response = self._session.request(method, url, timeout=self._timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DnsProviderError(
                NAME,
                record.fqdn,
                f"cannot reach the PowerDNS API ({type(exc).__name__})",
                transient=True,
            ) from exc
        if response.ok:
            return response
        status = response.status_code
        if status in (401, 403):
            cause = f"the PowerDNS API refused the API key (HTTP {status})"
        elif status == 404:
            cause = f"zone {record.zone} not found on PowerDNS server {self._server_id!r}"
        else:
            cause = f"PowerDNS API {method} failed (HTTP {status}): {_error_text(response)}"
        raise DnsProviderError(NAME, record.fqdn, cause, transient=status >= 500 or status == 429)


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("error", body))[:200] if isinstance(body, dict) else str(body)[:200]


def _build(values: Mapping[str, Any]) -> PowerDnsProvider:
    return PowerDnsProvider(
        values["api_url"], values["api_key"], values["server_id"], values["timeout"]
    )


INFO = ProviderInfo(
    name=NAME,
    summary="PowerDNS Authoritative Server through its HTTP API",
    settings=(
        Setting("api_url", 'the API\'s base URL, e.g. "http://ns1.example.net:8081"'),
        Setting("api_key", "the API key (webserver api-key)", secret=True),
        Setting("server_id", "the server id in API paths", required=False, default=SERVER_ID),
        Setting("timeout", "seconds per API request", required=False, kind=float, default=TIMEOUT),
    ),
    permissions="the API key (PowerDNS 4.x keys are all-or-nothing: restrict the webserver with "
    "webserver-allow-from to the issuer's addresses)",
    build=_build,
)

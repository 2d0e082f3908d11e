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

Every record of the set that is not ours is written back exactly as read: its content as the
server gave it (`\\DDD` escapes included), its "disabled" flag, and the set's TTL. The whole
zone is read because PowerDNS 4.7 leaves disabled records out of an `rrset_name` query.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _RRset:
    """The TXT RRset at one name as the server holds it; `records` as the API gives them."""

    ttl: int | None  # None when there is no RRset
    records: tuple[dict[str, Any], ...]

    def has(self, value: str, *, enabled_only: bool = False) -> bool:
        return any(_is(r, value) and not (enabled_only and r.get("disabled")) for r in self.records)

    def others(self, value: str) -> list[dict[str, Any]]:
        """The records that are not `value`, unchanged (content, disabled flag)."""
        return [
            {"content": r["content"], "disabled": bool(r.get("disabled", False))}
            for r in self.records
            if not _is(r, value)
        ]


def _is(record: dict[str, Any], value: str) -> bool:
    return _txt.unquote(record["content"], _txt.DECIMAL) == value


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
            current = self._read(record)
            # Ours present but disabled is not served: written again, enabled.
            if current.has(record.value, enabled_only=True):
                if writes:
                    log.info("powerdns: added a TXT value at %s", record.fqdn)
                return
            if writes < _MAX_WRITES:
                ours = {"content": _txt.quote(record.value), "disabled": False}
                self._replace(record, current, [*current.others(record.value), ours])
        raise DnsProviderError(
            NAME,
            record.fqdn,
            f"our TXT value was dropped after {_MAX_WRITES} writes: another writer keeps "
            "replacing this RRset at the same time",
            transient=True,
        )

    def remove_txt(self, record: TxtRecord) -> None:
        current = self._read(record)
        if not current.has(record.value):
            return
        rest = current.others(record.value)
        if rest:
            self._replace(record, current, rest)
        else:
            self._patch(record, {"name": record.fqdn, "type": "TXT", "changetype": "DELETE"})
        log.info("powerdns: removed a TXT value at %s", record.fqdn)

    # --- API ---------------------------------------------------------------------------------

    def _zone_url(self, record: TxtRecord) -> str:
        return f"{self._zones_url}/{urlquote(record.zone, safe='')}"

    def _read(self, record: TxtRecord) -> _RRset:
        """The TXT RRset at record.fqdn, its records in the server's order, disabled ones too
        (hence no rrset_name filter: PowerDNS 4.7 answers that one without them)."""
        response = self._call("GET", self._zone_url(record), record)
        try:
            zone = response.json()
            for rrset in zone["rrsets"]:
                if rrset["name"].lower() == record.fqdn and rrset["type"] == "TXT":
                    records = tuple(rrset["records"])
                    if not all(isinstance(r.get("content"), str) for r in records):
                        raise TypeError("a record without content")
                    return _RRset(int(rrset["ttl"]), records)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # A proxy's login page or a wrong port answers 200 too; nothing here is PowerDNS's.
            kind = response.headers.get("Content-Type", "no Content-Type")
            raise DnsProviderError(
                NAME,
                record.fqdn,
                f"the PowerDNS API at {response.url} answered GET with something that is not a "
                f"zone ({kind}: {type(exc).__name__}); check api_url",
            ) from exc
        return _RRset(None, ())

    def _replace(self, record: TxtRecord, current: _RRset, records: list[dict[str, Any]]) -> None:
        rrset = {
            "name": record.fqdn,
            "type": "TXT",
            # The set's TTL is the other records' too: kept while there is one.
            "ttl": record.ttl if current.ttl is None else current.ttl,
            "changetype": "REPLACE",
            "records": records,
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

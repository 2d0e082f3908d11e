"""Amazon Route 53 (and anything speaking its API, such as moto in the tests) through boto3.

Route 53 keeps all TXT values of a name in one record set, so adding or removing one value means
rewriting the set. Each rewrite is one change batch "DELETE the set exactly as just read, CREATE
the new set" (just CREATE when there was none). Route 53 applies a batch atomically and refuses a
DELETE whose values no longer match, and a CREATE of a set that exists, with InvalidChangeBatch; so
a concurrent writer makes our batch fail instead of losing its value, and we read again and retry.

The values of other parties are written back exactly as Route 53 returned them (`\\OOO` octal
escapes included), as is the set's TTL; they are decoded only to compare them with ours.

With `wait_insync` (the default) `add_txt` returns once Route 53 reports the change INSYNC on all
its nameservers, polling GetChange with backoff up to `insync_timeout`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from cloud.dns01.providers import _txt
from cloud.dns01.providers.base import InvalidSetting, ProviderInfo, Setting, TxtRecord
from cloud.errors import DnsProviderError

log = logging.getLogger(__name__)

NAME = "route53"
INSYNC_TIMEOUT = 120.0  # seconds to wait until a change is INSYNC on every Route 53 nameserver
TIMEOUT = 30.0  # seconds per API request
_ATTEMPTS = 4  # change batches per call before giving up on a name that keeps changing under us
_AUTH_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
}
_TRANSIENT_CODES = {
    "InternalError",
    "PriorRequestNotComplete",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
}


class Route53Provider:
    def __init__(
        self,
        client: Any,
        *,
        hosted_zone_id: str | None = None,
        wait_insync: bool = True,
        insync_timeout: float = INSYNC_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`client` is a boto3 Route 53 client; `sleep` and `clock` pace the INSYNC polling."""
        self._client = client
        self._hosted_zone_id = hosted_zone_id.rsplit("/", 1)[-1] if hosted_zone_id else None
        self._wait_insync = wait_insync
        self._insync_timeout = insync_timeout
        self._sleep = sleep
        self._clock = clock

    def add_txt(self, record: TxtRecord) -> None:
        def batch(current: dict[str, Any] | None, stored: list[str]) -> list[dict[str, Any]]:
            if any(_is(value, record.value) for value in stored):
                return []
            ttl = record.ttl if current is None else current["TTL"]
            return _rewrite(current, record.fqdn, ttl, [*stored, _txt.quote(record.value)])

        change_id = self._change(record, batch)
        if change_id is None:
            return
        log.info("route53: added a TXT value at %s (change %s)", record.fqdn, change_id)
        if self._wait_insync:
            self._wait(change_id, record)

    def remove_txt(self, record: TxtRecord) -> None:
        def batch(current: dict[str, Any] | None, stored: list[str]) -> list[dict[str, Any]]:
            if current is None or not any(_is(value, record.value) for value in stored):
                return []
            rest = [value for value in stored if not _is(value, record.value)]
            return _rewrite(current, record.fqdn, current["TTL"], rest)

        if self._change(record, batch) is not None:
            log.info("route53: removed a TXT value at %s", record.fqdn)

    # --- API ---------------------------------------------------------------------------------

    def _change(
        self,
        record: TxtRecord,
        batch: Callable[[dict[str, Any] | None, list[str]], list[dict[str, Any]]],
    ) -> str | None:
        """Applies `batch(current set, its values as stored)`; returns the change id, None if
        no change."""
        zone_id = self._zone_id(record)
        for attempt in range(1, _ATTEMPTS + 1):
            current = self._read(zone_id, record)
            records = current["ResourceRecords"] if current else []
            changes = batch(current, [rr["Value"] for rr in records])
            if not changes:
                return None
            try:
                response = self._call(
                    record,
                    "change_resource_record_sets",
                    HostedZoneId=zone_id,
                    ChangeBatch={"Comment": "certdrop dns-01", "Changes": changes},
                )
            except DnsProviderError as exc:
                if _code(exc.__cause__) != "InvalidChangeBatch" or attempt == _ATTEMPTS:
                    raise
                log.info("route53: %s changed under us, reading it again", record.fqdn)
                continue
            return response["ChangeInfo"]["Id"]
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _zone_id(self, record: TxtRecord) -> str:
        if self._hosted_zone_id:
            return self._hosted_zone_id
        zones = self._call(record, "list_hosted_zones_by_name", DNSName=record.zone, MaxItems="10")[
            "HostedZones"
        ]
        for zone in zones:
            if _name(zone["Name"]) == record.zone and not zone.get("Config", {}).get("PrivateZone"):
                return zone["Id"].rsplit("/", 1)[-1]
        raise DnsProviderError(
            NAME, record.fqdn, f"no public hosted zone named {record.zone} in this account"
        )

    def _read(self, zone_id: str, record: TxtRecord) -> dict[str, Any] | None:
        """The TXT record set at record.fqdn, as Route 53 returns it, or None."""
        sets = self._call(
            record,
            "list_resource_record_sets",
            HostedZoneId=zone_id,
            StartRecordName=record.fqdn,
            StartRecordType="TXT",
            MaxItems="1",
        )["ResourceRecordSets"]
        for rrset in sets:
            if _name(rrset["Name"]) == record.fqdn and rrset["Type"] == "TXT":
                return rrset
        return None

    def _wait(self, change_id: str, record: TxtRecord) -> None:
        deadline = self._clock() + self._insync_timeout
        delay = 1.0
        while True:
            info = self._call(record, "get_change", Id=change_id)["ChangeInfo"]
            if info["Status"] == "INSYNC":
                return
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise DnsProviderError(
                    NAME,
                    record.fqdn,
                    f"change {change_id} still {info['Status']} after {self._insync_timeout:g} s",
                    transient=True,
                )
            self._sleep(min(delay, remaining))
            delay = min(delay * 2, 10.0)

    def _call(self, record: TxtRecord, operation: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return getattr(self._client, operation)(**params)
        except ClientError as exc:
            code = _code(exc)
            message = exc.response.get("Error", {}).get("Message", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _AUTH_CODES:
                cause = f"AWS refused {operation} ({code}): {message}"
            else:
                cause = f"{operation} failed ({code}): {message}"
            transient = code in _TRANSIENT_CODES or status >= 500
            raise DnsProviderError(NAME, record.fqdn, cause, transient=transient) from exc
        except NoCredentialsError as exc:
            raise DnsProviderError(
                NAME,
                record.fqdn,
                "no AWS credentials: set access_key_id/secret_access_key or configure the "
                "standard AWS credential chain",
            ) from exc
        except BotoCoreError as exc:
            # Connection failures, timeouts and the like: botocore already retried.
            raise DnsProviderError(
                NAME, record.fqdn, f"{operation}: {type(exc).__name__}", transient=True
            ) from exc


def _is(stored: str, value: str) -> bool:
    """Whether a value as Route 53 stores it is `value`."""
    return _txt.unquote(stored, _txt.OCTAL) == value


def _rewrite(
    current: dict[str, Any] | None, fqdn: str, ttl: int, stored: list[str]
) -> list[dict[str, Any]]:
    """DELETE of the set exactly as read and CREATE of one holding `stored` (values as Route 53
    takes them, in presentation form)."""
    changes = []
    if current is not None:
        exact = {k: current[k] for k in ("Name", "Type", "TTL", "ResourceRecords")}
        changes.append({"Action": "DELETE", "ResourceRecordSet": exact})
    if stored:
        rrset = {
            "Name": fqdn,
            "Type": "TXT",
            "TTL": ttl,
            "ResourceRecords": [{"Value": value} for value in stored],
        }
        changes.append({"Action": "CREATE", "ResourceRecordSet": rrset})
    return changes


def _name(text: str) -> str:
    """A Route 53 name made comparable: lower case, octal escapes (\\052 for *) decoded."""
    return re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), text).lower()


def _code(exc: BaseException | None) -> str:
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code", "") if isinstance(response, dict) else ""


def _check(values: Mapping[str, Any]) -> None:
    if ("access_key_id" in values) != ("secret_access_key" in values):
        raise InvalidSetting(
            "access_key_id and secret_access_key must be given together",
            "give both, or neither to use the standard AWS credential chain",
            key="access_key_id",
        )


def _build(values: Mapping[str, Any]) -> Route53Provider:
    import boto3
    from botocore.config import Config

    timeout = values["timeout"]
    session = boto3.session.Session(
        aws_access_key_id=values.get("access_key_id"),
        aws_secret_access_key=values.get("secret_access_key"),
        region_name=values["region"],
    )
    client = session.client(
        "route53",
        endpoint_url=values.get("endpoint_url"),
        config=Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"mode": "standard", "max_attempts": 3},
        ),
    )
    return Route53Provider(
        client,
        hosted_zone_id=values.get("hosted_zone_id"),
        wait_insync=values["wait_insync"],
        insync_timeout=values["insync_timeout"],
    )


INFO = ProviderInfo(
    name=NAME,
    summary="Amazon Route 53 (credentials from the standard AWS chain unless given)",
    settings=(
        Setting(
            "hosted_zone_id",
            "the hosted zone id; found by the zone's name when omitted",
            required=False,
        ),
        Setting("region", "the AWS region for the API client", required=False, default="us-east-1"),
        Setting("endpoint_url", "another Route 53 endpoint (tests: moto)", required=False),
        Setting("access_key_id", "an access key id", required=False, secret=True),
        Setting("secret_access_key", "its secret access key", required=False, secret=True),
        Setting(
            "wait_insync",
            "wait until Route 53 reports the change INSYNC",
            required=False,
            kind=bool,
            default=True,
        ),
        Setting(
            "insync_timeout",
            "seconds to wait for INSYNC",
            required=False,
            kind=float,
            default=INSYNC_TIMEOUT,
        ),
        Setting("timeout", "seconds per API request", required=False, kind=float, default=TIMEOUT),
    ),
    permissions="route53:ChangeResourceRecordSets on the hosted zone (actions CREATE and DELETE), "
    "limited with the conditions "
    "route53:ChangeResourceRecordSetsRecordTypes = TXT and "
    "route53:ChangeResourceRecordSetsNormalizedRecordNames like `_acme-challenge.*`; "
    "route53:ListResourceRecordSets on the hosted zone; route53:GetChange on `change/*`; "
    "route53:ListHostedZonesByName (only when hosted_zone_id is not set)",
    build=_build,
    check=_check,
)

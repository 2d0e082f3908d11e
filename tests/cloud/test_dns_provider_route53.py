"""route53: zone lookup and errors against moto's server; the concurrency retry and the INSYNC wait
against botocore's Stubber, which fails loudly on any call it was not told to expect (moto reports
every change INSYNC at once and does not reject a CREATE over an existing set as Route 53 does)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber

from cloud.dns01.providers import _txt
from cloud.dns01.providers.base import TxtRecord
from cloud.dns01.providers.registry import build_provider
from cloud.dns01.providers.route53 import Route53Provider
from cloud.errors import DnsProviderError
from lab.moto import REGION
from tests.cloud.conftest import ZONE, route53_held

ZONE_ID = "Z0000000000TEST"


def record(zone: str = ZONE, value: str | None = None) -> TxtRecord:
    fqdn = f"_acme-challenge.t{secrets.token_hex(5)}.{zone}"
    return TxtRecord(zone, fqdn, value or secrets.token_urlsafe(32))


def test_an_explicit_hosted_zone_id_is_used_as_given(route53_moto, route53_client):
    zone_id = route53_client.list_hosted_zones_by_name(DNSName=ZONE)["HostedZones"][0]["Id"]
    provider = build_provider(
        "route53",
        {"endpoint_url": route53_moto.endpoint_url, "region": REGION, "hosted_zone_id": zone_id},
    )
    mine = record()

    provider.add_txt(mine)

    assert route53_held(route53_client, mine.fqdn) == [mine.value]


def test_a_zone_missing_from_the_account_is_a_terminal_error(route53_harness):
    with pytest.raises(DnsProviderError, match=r"no public hosted zone named nope\.test") as caught:
        route53_harness.provider.add_txt(record("nope.test."))
    assert caught.value.transient is False


# --- Stubber: exact calls, nothing else ---------------------------------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[object, Stubber]]:
    session = boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="y", region_name=REGION
    )
    client = session.client("route53")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def rrset(fqdn: str, *values: str, ttl: int = 60) -> dict:
    return {
        "Name": fqdn,
        "Type": "TXT",
        "TTL": ttl,
        "ResourceRecords": [{"Value": f'"{v}"'} for v in values],
    }


def expect_read(stubber: Stubber, fqdn: str, *values: str) -> None:
    sets = [rrset(fqdn, *values)] if values else []
    stubber.add_response(
        "list_resource_record_sets",
        {"ResourceRecordSets": sets, "IsTruncated": False, "MaxItems": "1"},
        {
            "HostedZoneId": ZONE_ID,
            "StartRecordName": fqdn,
            "StartRecordType": "TXT",
            "MaxItems": "1",
        },
    )


def change_info(status: str = "PENDING") -> dict:
    return {"ChangeInfo": {"Id": "/change/C1", "Status": status, "SubmittedAt": "2026-01-01"}}


def batch(*changes: tuple[str, dict]) -> dict:
    return {
        "HostedZoneId": ZONE_ID,
        "ChangeBatch": {
            "Comment": "certdrop dns-01",
            "Changes": [{"Action": a, "ResourceRecordSet": s} for a, s in changes],
        },
    }


def test_a_batch_refused_because_the_set_changed_is_retried_on_a_fresh_read(stubbed):
    client, stubber = stubbed
    mine = record(value="mine")
    expect_read(stubber, mine.fqdn, "apex")
    stubber.add_client_error(
        "change_resource_record_sets",
        service_error_code="InvalidChangeBatch",
        service_message="Tried to delete resource record set but the values do not match",
        http_status_code=400,
        expected_params=batch(
            ("DELETE", rrset(mine.fqdn, "apex")), ("CREATE", rrset(mine.fqdn, "apex", "mine"))
        ),
    )
    expect_read(stubber, mine.fqdn, "apex", "rival")
    stubber.add_response(
        "change_resource_record_sets",
        change_info(),
        batch(
            ("DELETE", rrset(mine.fqdn, "apex", "rival")),
            ("CREATE", rrset(mine.fqdn, "apex", "rival", "mine")),
        ),
    )

    Route53Provider(client, hosted_zone_id=ZONE_ID, wait_insync=False).add_txt(mine)


def test_removing_the_last_value_deletes_the_exact_set(stubbed):
    client, stubber = stubbed
    mine = record(value="mine")
    expect_read(stubber, mine.fqdn, "mine")
    stubber.add_response(
        "change_resource_record_sets", change_info(), batch(("DELETE", rrset(mine.fqdn, "mine")))
    )

    Route53Provider(client, hosted_zone_id=ZONE_ID).remove_txt(mine)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_add_waits_for_insync_with_growing_pauses(stubbed):
    client, stubber = stubbed
    mine = record(value="mine")
    expect_read(stubber, mine.fqdn)
    stubber.add_response(
        "change_resource_record_sets", change_info(), batch(("CREATE", rrset(mine.fqdn, "mine")))
    )
    for status in ("PENDING", "PENDING", "PENDING", "INSYNC"):
        stubber.add_response("get_change", change_info(status), {"Id": "/change/C1"})
    clock = FakeClock()

    Route53Provider(client, hosted_zone_id=ZONE_ID, sleep=clock.sleep, clock=clock).add_txt(mine)

    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_a_change_never_insync_is_a_transient_error_at_the_deadline(stubbed):
    client, stubber = stubbed
    mine = record(value="mine")
    expect_read(stubber, mine.fqdn)
    stubber.add_response(
        "change_resource_record_sets", change_info(), batch(("CREATE", rrset(mine.fqdn, "mine")))
    )
    for _ in range(4):
        stubber.add_response("get_change", change_info("PENDING"), {"Id": "/change/C1"})
    clock = FakeClock()
    provider = Route53Provider(
        client, hosted_zone_id=ZONE_ID, insync_timeout=5, sleep=clock.sleep, clock=clock
    )

    with pytest.raises(DnsProviderError, match="still PENDING after 5 s") as caught:
        provider.add_txt(mine)

    assert caught.value.transient is True
    assert clock.now == 5.0


@pytest.mark.parametrize(
    ("code", "status", "transient"),
    [("AccessDenied", 403, False), ("Throttling", 400, True), ("InternalFailure", 500, True)],
)
def test_aws_errors_are_classified(stubbed, code, status, transient):
    client, stubber = stubbed
    stubber.add_client_error(
        "list_resource_record_sets", service_error_code=code, http_status_code=status
    )

    with pytest.raises(DnsProviderError, match=code) as caught:
        Route53Provider(client, hosted_zone_id=ZONE_ID).add_txt(record())

    assert caught.value.transient is transient


def _zone_id(client) -> str:
    return client.list_hosted_zones_by_name(DNSName=ZONE, MaxItems="1")["HostedZones"][0]["Id"]


def _held_raw(client, fqdn: str) -> tuple[int | None, list[str]]:
    """The set's TTL and its values exactly as Route 53 returns them."""
    sets = client.list_resource_record_sets(
        HostedZoneId=_zone_id(client), StartRecordName=fqdn, StartRecordType="TXT", MaxItems="1"
    )["ResourceRecordSets"]
    found = [s for s in sets if s["Name"] == fqdn and s["Type"] == "TXT"]
    if not found:
        return None, []
    return found[0]["TTL"], [rr["Value"] for rr in found[0]["ResourceRecords"]]


def _create(client, fqdn: str, *raw: str, ttl: int = 300) -> None:
    rrset = {
        "Name": fqdn,
        "Type": "TXT",
        "TTL": ttl,
        "ResourceRecords": [{"Value": value} for value in raw],
    }
    client.change_resource_record_sets(
        HostedZoneId=_zone_id(client),
        ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": rrset}]},
    )


def test_route53_add_keeps_another_value_written_with_octal_escapes(
    route53_harness, route53_client
) -> None:
    """Expected: another TXT value at the name survives our add unchanged. Route 53 (Developer
    Guide, "TXT record type"): characters outside printable ASCII are written and returned as
    `\\` + three octal digits, e.g. "caf\\303\\251".

    Instead: `_txt.unquote` drops the backslashes and the set is re-created with the value
    "caf303251": DELETE of the exact set + CREATE of a rewritten one replaces the other value.

    Found by an independent review of the dns-01 layer; failed before the fix."""
    mine = record()
    other = '"caf\\303\\251"'
    _create(route53_client, mine.fqdn, other)
    route53_harness.provider.add_txt(mine)
    _ttl, raw = _held_raw(route53_client, mine.fqdn)
    assert other in raw, raw
    assert _txt.quote(mine.value) in raw


def test_route53_add_keeps_the_ttl_of_a_set_held_with_others(route53_harness, route53_client):
    mine = record()
    others = ('"caf\\303\\251"', '"a\\"quoted\\" one"')
    _create(route53_client, mine.fqdn, *others, ttl=3600)
    route53_harness.provider.add_txt(mine)
    assert _held_raw(route53_client, mine.fqdn) == (3600, [*others, _txt.quote(mine.value)])


def test_route53_remove_writes_the_other_values_and_the_ttl_back_verbatim(
    route53_harness, route53_client
) -> None:
    # Created together with ours: moto refuses a CREATE identical to an earlier one while that
    # set exists, even after a DELETE of it in the same batch (Route 53 applies them in order).
    mine = record()
    others = ('"caf\\303\\251"', '"a\\"quoted\\" one"')
    _create(route53_client, mine.fqdn, others[0], _txt.quote(mine.value), others[1], ttl=3600)
    route53_harness.provider.remove_txt(mine)
    assert _held_raw(route53_client, mine.fqdn) == (3600, list(others))

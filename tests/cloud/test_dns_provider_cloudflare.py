"""cloudflare against the fake v4 API: token errors, zone lookup, pagination and quoted content."""

from __future__ import annotations

import secrets

import pytest
import requests

from cloud.dns01.providers.base import TxtRecord
from cloud.dns01.providers.registry import build_provider
from cloud.errors import DnsProviderError
from lab.ports import free_port
from tests.cloud.conftest import ZONE, cloudflare_held


def record(zone: str = ZONE, value: str | None = None) -> TxtRecord:
    fqdn = f"_acme-challenge.t{secrets.token_hex(5)}.{zone}"
    return TxtRecord(zone, fqdn, value or secrets.token_urlsafe(32))


def provider(fake, token: str | None = None, **extra):
    return build_provider(
        "cloudflare", {"api_token": token or fake.token, "api_url": fake.api_url, **extra}
    )


def post_txt(fake, fqdn: str, content: str) -> None:
    response = requests.post(
        f"{fake.api_url}/zones/{fake.zone_id(ZONE)}/dns_records",
        json={"type": "TXT", "name": fqdn.rstrip("."), "content": content, "ttl": 60},
        headers={"Authorization": f"Bearer {fake.token}"},
        timeout=5,
    )
    response.raise_for_status()


def test_an_unknown_token_is_a_terminal_error_without_the_token(cloudflare_fake):
    wrong = secrets.token_urlsafe(30)

    with pytest.raises(DnsProviderError, match="refused the API token") as caught:
        provider(cloudflare_fake, wrong).add_txt(record())

    assert caught.value.transient is False
    assert wrong not in str(caught.value)


def test_a_token_without_dns_edit_rights_is_a_terminal_error(cloudflare_fake):
    with pytest.raises(DnsProviderError, match=r"HTTP 403, 10000") as caught:
        provider(cloudflare_fake, cloudflare_fake.read_only_token).add_txt(record())
    assert caught.value.transient is False


def test_a_zone_the_token_cannot_see_is_a_terminal_error(cloudflare_fake):
    with pytest.raises(DnsProviderError, match=r"no zone named nope\.test visible"):
        provider(cloudflare_fake).add_txt(record("nope.test."))


def test_an_explicit_zone_id_is_used_and_a_wrong_one_is_reported(cloudflare_fake):
    mine = record()
    provider(cloudflare_fake, zone_id=cloudflare_fake.zone_id(ZONE)).add_txt(mine)
    assert cloudflare_held(cloudflare_fake, mine.fqdn) == [mine.value]

    with pytest.raises(DnsProviderError, match="7003"):
        provider(cloudflare_fake, zone_id="0" * 32).add_txt(record())


def test_removal_finds_our_value_past_the_first_page(cloudflare_fake):
    mine = record()
    for i in range(105):
        post_txt(cloudflare_fake, mine.fqdn, f"other-{i}")
    cf = provider(cloudflare_fake)
    cf.add_txt(mine)

    cf.remove_txt(mine)

    held = cloudflare_held(cloudflare_fake, mine.fqdn)
    assert mine.value not in held
    assert len(held) == 105


def test_removal_matches_content_stored_in_quotes(cloudflare_fake):
    mine = record()
    post_txt(cloudflare_fake, mine.fqdn, f'"{mine.value}"')
    post_txt(cloudflare_fake, mine.fqdn, "other")

    provider(cloudflare_fake).remove_txt(mine)

    assert cloudflare_held(cloudflare_fake, mine.fqdn) == ["other"]


def test_an_api_that_is_not_listening_is_a_transient_error():
    cf = build_provider(
        "cloudflare", {"api_token": "t", "api_url": f"http://127.0.0.1:{free_port()}/client/v4"}
    )
    with pytest.raises(DnsProviderError, match="cannot reach") as caught:
        cf.add_txt(record())
    assert caught.value.transient is True

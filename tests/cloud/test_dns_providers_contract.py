"""The contract every DNS provider keeps, checked against its real (or faithful fake) backend.

The apex and the wildcard of one certificate share one `_acme-challenge` name with two values, and
a run may die and repeat at any step: add must never replace another value, remove must remove only
its own, and both must be idempotent. What the backend holds is read directly, not through the
provider under test.

The providers come from the registry itself, so a new one cannot escape the contract: each needs a
`<type>_harness` fixture in tests/cloud/conftest.py, or its tests fail saying so.
"""

from __future__ import annotations

import secrets

import pytest

from cloud.dns01.providers.base import TxtRecord
from cloud.dns01.providers.registry import PROVIDERS
from tests.cloud.conftest import Harness


@pytest.fixture(params=sorted(PROVIDERS))
def harness(request: pytest.FixtureRequest) -> Harness:
    fixture = f"{request.param}_harness"
    try:
        return request.getfixturevalue(fixture)
    except pytest.FixtureLookupError:
        pytest.fail(
            f"provider {request.param!r} is registered but has no {fixture} fixture: add one to "
            "tests/cloud/conftest.py (a built provider, its zone, and a way to read its backend)"
        )


@pytest.fixture
def fqdn(harness: Harness) -> str:
    """A name no other test uses, so the session-wide servers can be shared."""
    return f"_acme-challenge.t{secrets.token_hex(5)}.{harness.zone}"


def txt(harness: Harness, fqdn: str, value: str | None = None) -> TxtRecord:
    return TxtRecord(harness.zone, fqdn, value or secrets.token_urlsafe(32))


def test_adding_a_value_creates_the_record_when_none_exists(harness, fqdn):
    record = txt(harness, fqdn)
    assert harness.held(fqdn) == []

    harness.provider.add_txt(record)

    assert harness.held(fqdn) == [record.value]


def test_two_values_at_one_name_coexist(harness, fqdn):
    apex, wildcard = txt(harness, fqdn), txt(harness, fqdn)

    harness.provider.add_txt(apex)
    harness.provider.add_txt(wildcard)

    assert sorted(harness.held(fqdn)) == sorted([apex.value, wildcard.value])


def test_removing_one_value_leaves_the_other(harness, fqdn):
    apex, wildcard = txt(harness, fqdn), txt(harness, fqdn)
    harness.provider.add_txt(apex)
    harness.provider.add_txt(wildcard)

    harness.provider.remove_txt(apex)

    assert harness.held(fqdn) == [wildcard.value]


def test_removing_twice_is_fine_and_leaves_the_other_value(harness, fqdn):
    apex, wildcard = txt(harness, fqdn), txt(harness, fqdn)
    harness.provider.add_txt(apex)
    harness.provider.add_txt(wildcard)

    harness.provider.remove_txt(apex)
    harness.provider.remove_txt(apex)

    assert harness.held(fqdn) == [wildcard.value]


def test_removing_the_last_value_leaves_nothing_and_removing_again_is_fine(harness, fqdn):
    record = txt(harness, fqdn)
    harness.provider.add_txt(record)

    harness.provider.remove_txt(record)
    harness.provider.remove_txt(record)

    assert harness.held(fqdn) == []


def test_removing_a_value_that_was_never_added_succeeds(harness, fqdn):
    harness.provider.remove_txt(txt(harness, fqdn))

    assert harness.held(fqdn) == []


def test_adding_twice_leaves_one_copy(harness, fqdn):
    record = txt(harness, fqdn)

    harness.provider.add_txt(record)
    harness.provider.add_txt(record)

    assert harness.held(fqdn) == [record.value]


def test_values_at_different_names_are_independent(harness, fqdn):
    other_fqdn = "_acme-challenge.other-" + fqdn.removeprefix("_acme-challenge.")
    mine, other = txt(harness, fqdn), txt(harness, other_fqdn)
    harness.provider.add_txt(mine)
    harness.provider.add_txt(other)

    harness.provider.remove_txt(mine)

    assert harness.held(fqdn) == []
    assert harness.held(other_fqdn) == [other.value]

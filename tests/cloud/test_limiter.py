"""The limiter: the CA's limits from the configuration, the registered domain by the packaged
Public Suffix List, the buckets, the plan the scheduler makes and the gate a run passes."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.acme.certificate_keys import KeyType
from cloud.config import (
    LETSENCRYPT_LIMITS,
    LETSENCRYPT_PRODUCTION,
    CaLimits,
    Limit,
    SiteConfig,
    parse,
)
from cloud.errors import ConfigError, WaitingForLimits
from cloud.limiter import buckets, ledger
from cloud.limiter.gate import OrderGate
from cloud.limiter.orders import OrderKind, needs
from cloud.limiter.plan import Candidate, plan
from cloud.limiter.registered_domain import psl_version, registered_domain
from cloud.store.local import LocalStore

NOW = datetime(2028, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
ONE_PER_HOUR = Limit(1, HOUR)


def _config(ca_extra: str, directory: str = LETSENCRYPT_PRODUCTION):
    text = f"""
[ca]
directory = "{directory}"
terms_agreed = true
{ca_extra}

[providers.dns]
type = "exec"
command = ["/bin/true"]
"""
    return parse(text, Path("/etc/certdrop/certdrop.toml"))


def _site(sid: str, domain: str) -> SiteConfig:
    return SiteConfig(sid, domain, (domain, f"*.{domain}"), KeyType.EC_P256, "dns")


# --- configuration ---------------------------------------------------------------------------


def test_lets_encrypt_production_gets_its_published_limits_by_default():
    limits = _config("").ca.limits

    assert limits == LETSENCRYPT_LIMITS
    assert limits.new_orders.interval == timedelta(seconds=36)
    assert limits.per_registered_domain.interval == timedelta(minutes=201.6)
    assert limits.failed_authorizations.interval == timedelta(minutes=12)
    assert limits.renewals_exempt and limits.ari_renewals_exempt


def test_another_ca_has_no_limits_unless_the_configuration_gives_them():
    assert _config("", "https://acme.example/directory").ca.limits is None

    limits = _config(
        "limits = { new_orders = { count = 100, hours = 1 } }", "https://acme.example/directory"
    ).ca.limits

    assert limits == CaLimits(new_orders=Limit(100, HOUR))  # exempt from nothing


def test_an_override_replaces_only_the_limit_written():
    limits = _config("limits = { new_orders = { count = 3000, hours = 3 } }").ca.limits

    assert limits == replace(LETSENCRYPT_LIMITS, new_orders=Limit(3000, 3 * HOUR))


def test_bad_limits_are_reported_together_naming_each_key():
    with pytest.raises(ConfigError) as caught:
        _config(
            "limits = { new_orders = { count = 0, hours = 3 }, "
            "certificates_per_exact_set = 5, renewals_exempt = 1, per_week = 3 }"
        )

    keys = {p.key for p in caught.value.problems}
    assert keys == {
        "ca.limits.new_orders.count",
        "ca.limits.certificates_per_exact_set",
        "ca.limits.renewals_exempt",
        "ca.limits.per_week",
    }


# --- registered domains ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "registered"),
    [
        ("*.nas.example.co.uk", "example.co.uk"),
        ("Example.COM.", "example.com"),
        ("a.b.c.github.io", "c.github.io"),  # the list's private section counts too
        ("nas.example.test", "example.test"),  # no listed suffix: the default rule "*"
    ],
)
def test_the_registered_domain_follows_the_public_suffix_list(name, registered):
    assert registered_domain(name) == registered


def test_the_public_suffix_list_is_the_packaged_snapshot_with_its_date():
    assert psl_version()[:10].count("-") == 2  # "2025-04-07_15-51-09_UTC"


# --- buckets and what an order needs ---------------------------------------------------------


def test_a_full_bucket_takes_its_whole_count_at_once_then_refills_one_token_at_a_time():
    limit = Limit(300, 3 * HOUR)
    tat = None
    for _ in range(300):
        assert buckets.has_token(limit, tat, NOW)
        tat = buckets.spend(limit, tat, NOW)

    assert not buckets.has_token(limit, tat, NOW)
    assert buckets.ready_at(limit, tat, NOW) == NOW + timedelta(seconds=36)
    assert buckets.tokens(limit, tat, NOW + HOUR) == pytest.approx(100)


def test_the_cas_retry_after_empties_a_bucket_until_then():
    limit = Limit(5, HOUR)
    tat = buckets.empty_until(limit, None, NOW + 2 * HOUR)

    assert buckets.ready_at(limit, tat, NOW) == NOW + 2 * HOUR


def test_what_each_kind_of_order_is_subject_to_as_lets_encrypt_says():
    site = _site("a", "nas.example.co.uk")

    first = {n.key for n in needs(LETSENCRYPT_LIMITS, site.names, OrderKind.FIRST)}
    renewal = {n.key for n in needs(LETSENCRYPT_LIMITS, site.names, OrderKind.RENEWAL)}
    ari = needs(LETSENCRYPT_LIMITS, site.names, OrderKind.ARI_RENEWAL)

    assert first == {"orders", "domain:example.co.uk", *renewal}
    assert {k.split(":")[0] for k in renewal} == {"set", "authz"}
    assert "authz:nas.example.co.uk" in renewal  # the wildcard's identifier is its base name
    assert ari == ()


def test_without_exemptions_a_renewal_counts_like_a_first_issuance():
    limits = replace(LETSENCRYPT_LIMITS, renewals_exempt=False, ari_renewals_exempt=False)
    site = _site("a", "example.com")

    assert needs(limits, site.names, OrderKind.ARI_RENEWAL) == needs(
        limits, site.names, OrderKind.FIRST
    )


# --- the plan --------------------------------------------------------------------------------


def _candidate(sid, domain, not_after=None, limits=LETSENCRYPT_LIMITS, kind=OrderKind.FIRST):
    shared = tuple(n for n in needs(limits, _site(sid, domain).names, kind) if n.shared)
    return Candidate(sid, kind, shared, not_after)


def _spent(limit: Limit, count: int, at: datetime = NOW) -> float:
    """A bucket's tat, as the ledger keeps it, after `count` tokens spent at `at`."""
    tat = None
    for _ in range(count):
        tat = buckets.spend(limit, tat, at)
    assert tat is not None
    return tat.timestamp()


def test_the_most_urgent_go_first_and_the_others_wait_one_refill_apart():
    limits = CaLimits(new_orders=Limit(2, 2 * HOUR), renewals_exempt=False)
    due = [
        _candidate("new", "new.example", limits=limits),
        _candidate("late", "late.example", NOW + 2 * HOUR, limits, OrderKind.RENEWAL),
        _candidate("soon", "soon.example", NOW + HOUR, limits, OrderKind.RENEWAL),
        _candidate("later", "later.example", NOW + 9 * HOUR, limits, OrderKind.RENEWAL),
    ]

    found = plan(limits, ledger.Ledger("k"), due, NOW)

    assert found.go == ("soon", "late")
    assert [(w.site, w.go_at) for w in found.waiting.values()] == [
        ("later", NOW + HOUR),
        ("new", NOW + 2 * HOUR),
    ]
    assert found.waiting["new"].held_by == ("new orders per account",)


def test_a_site_held_by_its_registered_domain_does_not_hold_up_the_fleet():
    shared = {"domain:busy.example": _spent(LETSENCRYPT_LIMITS.per_registered_domain, 50)}
    due = [_candidate("a", "a.busy.example"), _candidate("b", "b.other.example")]

    found = plan(LETSENCRYPT_LIMITS, ledger.Ledger("k", shared), due, NOW)

    assert found.go == ("b",)
    assert found.waiting["a"].go_at == NOW + timedelta(minutes=201.6)
    assert found.waiting["a"].held_by == ("certificates per registered domain busy.example",)


def test_first_issuances_start_the_longest_registered_domain_queue_first():
    limits = CaLimits(new_orders=Limit(2, HOUR), per_registered_domain=Limit(1, 24 * HOUR))
    due = [
        _candidate("a", "a.example", limits=limits),
        _candidate("b", "b.example", limits=limits),
        _candidate("x1", "x1.org.example", limits=limits),
        _candidate("x2", "x2.org.example", limits=limits),
    ]

    found = plan(limits, ledger.Ledger("k"), due, NOW)

    assert found.go == ("x1", "a")  # org.example's second site waits a day whatever happens
    assert found.waiting["b"].go_at == NOW + HOUR / 2
    assert found.waiting["x2"].go_at == NOW + 24 * HOUR


def test_the_ticks_plan_has_the_same_sites_going_now_without_their_go_times():
    due = [_candidate(f"s{i}", f"s{i}.example") for i in range(400)]

    quick = plan(LETSENCRYPT_LIMITS, ledger.Ledger("k"), due, NOW, full=False)
    full = plan(LETSENCRYPT_LIMITS, ledger.Ledger("k"), due, NOW)

    assert quick.go == full.go
    assert len(quick.go) == 300
    assert set(quick.held_back) == set(full.waiting)
    assert quick.waiting == {}


def test_exempt_sites_and_sites_only_removing_txt_values_go_at_once():
    spent = {"orders": _spent(LETSENCRYPT_LIMITS.new_orders, 300)}
    due = ["txt-only", _candidate("renewal", "r.example", NOW + HOUR, kind=OrderKind.RENEWAL)]

    found = plan(LETSENCRYPT_LIMITS, ledger.Ledger("k", spent), due, NOW)

    assert found.go == ("txt-only", "renewal")
    assert found.waiting == {}


# --- the gate --------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "store")


def _gate(store, limits=LETSENCRYPT_LIMITS) -> OrderGate:
    return OrderGate(limits, store, LETSENCRYPT_PRODUCTION)


def test_an_order_takes_its_tokens_and_the_next_waits_until_one_refills(store):
    gate = _gate(store, CaLimits(new_orders=ONE_PER_HOUR))
    gate.take(_site("a", "a.example"), OrderKind.FIRST, NOW)

    with pytest.raises(WaitingForLimits) as caught:
        gate.take(_site("b", "b.example"), OrderKind.FIRST, NOW + HOUR / 4)

    assert caught.value.go_at == NOW + HOUR
    assert caught.value.held_by == ("new orders per account",)
    assert caught.value.code == "limits.waiting"
    gate.take(_site("b", "b.example"), OrderKind.FIRST, NOW + HOUR)  # and then it fits


def test_two_runs_at_once_never_both_take_the_last_token(store):
    gate = _gate(store, CaLimits(new_orders=Limit(1, HOUR)))
    outcomes: list[str] = []

    def run(sid):
        try:
            gate.take(_site(sid, f"{sid}.example"), OrderKind.FIRST, NOW)
            outcomes.append("took")
        except WaitingForLimits:
            outcomes.append("waits")

    threads = [threading.Thread(target=run, args=(f"s{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == ["took"] + ["waits"] * 7


def test_a_forced_run_takes_what_it_needs_and_never_waits(store):
    gate = _gate(store, CaLimits(new_orders=ONE_PER_HOUR))
    gate.take(_site("a", "a.example"), OrderKind.FIRST, NOW)

    gate.take(_site("b", "b.example"), OrderKind.FIRST, NOW, force=True)

    shared = ledger.load(store, ledger.ledger_key(LETSENCRYPT_PRODUCTION))
    assert shared.tat("orders") == NOW + HOUR  # empty, not in debt


def test_a_rate_limited_answer_empties_the_orders_buckets_until_the_retry_after(store):
    gate = _gate(store)
    site = _site("a", "a.example")

    gate.refused(site, OrderKind.FIRST, NOW + 2 * HOUR, NOW)

    with pytest.raises(WaitingForLimits) as caught:
        gate.take(_site("b", "b.example"), OrderKind.FIRST, NOW + HOUR)
    assert caught.value.go_at == NOW + 2 * HOUR
    with pytest.raises(WaitingForLimits) as same_names:
        gate.take(site, OrderKind.RENEWAL, NOW + HOUR)  # its own names' buckets too
    assert same_names.value.held_by == (
        "certificates per exact set of names",
        "failed authorizations for a.example",  # the CA does not say which limit it was
    )


def test_failed_authorizations_hold_the_next_order_until_the_identifier_may_fail_again(store):
    gate = _gate(store)
    site = _site("a", "a.example")
    gate.failed_authorizations(site, ["a.example"] * 5, NOW)  # apex and wildcard, 2.5 orders

    with pytest.raises(WaitingForLimits) as caught:
        gate.take(site, OrderKind.RENEWAL, NOW)

    assert caught.value.go_at == NOW + timedelta(minutes=12)
    assert caught.value.held_by == ("failed authorizations for a.example",)


def test_an_ari_renewal_touches_no_ledger(store):
    _gate(store).take(_site("a", "a.example"), OrderKind.ARI_RENEWAL, NOW)

    assert list(store.list("state/limits/")) == []


def test_a_ledger_keeps_only_buckets_not_yet_full_again(store):
    gate = _gate(store, CaLimits(new_orders=ONE_PER_HOUR, per_exact_set=ONE_PER_HOUR))
    gate.take(_site("a", "a.example"), OrderKind.FIRST, NOW)
    gate.take(_site("b", "b.example"), OrderKind.FIRST, NOW + 2 * HOUR)

    keys = sorted(info.key for info in store.list("state/limits/"))
    shared = ledger.load(store, ledger.ledger_key(LETSENCRYPT_PRODUCTION))

    assert len(keys) == 3  # the shared one, a's and b's own
    assert dict(shared.buckets) == {"orders": NOW + 3 * HOUR}  # a's token has refilled

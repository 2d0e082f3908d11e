"""TXT cleanup when the configuration changes while values are journalled (DESIGN §5: providers
"remove only their own on cleanup — always, also after failures"; README: leftovers visible).
From an independent review: each test failed before its fix."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from cloud.cli.exit_codes import EXIT_OK
from cloud.cli.main import main
from cloud.config import load
from cloud.dns01.providers.base import TxtRecord
from cloud.dns01.solver import ChallengeJournal
from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.pipeline.site_run import Runner
from lab.issuer_config import bind_config
from tests.cloud.issuing import txt_values


@pytest.fixture
def lab(tmp_path, pebble, bind_auth):
    config = bind_config(tmp_path, pebble, bind_auth)
    init_issuer(parts.keystore(config))
    return config, parts.store(config)


def _place(config, store, site, name, zone, value, provider="dns"):
    """What a run whose cleanup failed leaves: the value in DNS and in the site's journal."""
    fqdn = f"_acme-challenge.{name}."
    record = TxtRecord(zone, fqdn, value)
    ChallengeJournal(store, site).record(provider, [(name, record)], datetime.now(UTC))
    parts.provider(config, provider).add_txt(record)
    return fqdn


def test_a_renamed_provider_with_journalled_values_does_not_crash_the_sites_runs(lab, bind_auth):
    config, store = lab
    fqdn = _place(
        config,
        store,
        "example",
        "example.test",
        "example.test.",
        "left-by-old-name___________________________",
    )
    # The operator renames the provider table ([providers.dns] -> [providers.bind]).
    text = config.source.read_text()
    text = text.replace("[providers.dns]", "[providers.bind]").replace(
        'provider = "dns"', 'provider = "bind"'
    )
    config.source.write_text(text)
    renamed = load(config.source)
    runner = Runner(renamed, store, parts.keystore(renamed), parts.publisher(renamed, store))

    try:
        outcome = runner.run_site("example")
    except KeyError as exc:  # escapes run_site: the site can never renew again
        pytest.fail(f"a journalled value of a renamed provider broke every run: {exc!r}")
    finally:  # the zone is shared with other tests: the value goes, by the old name
        parts.provider(config, "dns").remove_txt(
            TxtRecord("example.test.", fqdn, "left-by-old-name___________________________")
        )

    assert outcome.result == "issued"
    # No provider of that name any more: the value stays journalled and shown, tried again.
    assert outcome.leftover_txt == (f"{fqdn} left-by-old-name___________________________",)


def test_site_remove_does_not_forget_txt_values_still_in_dns(lab, bind_auth):
    config, store = lab
    source = str(config.source)
    text = config.source.read_text()
    config.source.write_text(text + '\n[sites.other]\nprovider = "dns"\ndomain = "other.test"\n')
    config = load(config.source)
    fqdn = _place(
        config,
        store,
        "other",
        "other.test",
        "other.test.",
        "left-before-remove_________________________",
    )

    # Removed while the provider is still configured: the value goes with the site.
    assert main(["-c", source, "site", "remove", "other"]) == EXIT_OK
    left = txt_values(bind_auth.address, fqdn)
    assert "left-before-remove_________________________" not in left, (
        f"site remove left {left} in DNS"
    )
    assert not ChallengeJournal(store, "other").entries()


def test_txt_values_of_a_site_deleted_from_the_config_file_are_removed_by_the_next_run(
    lab, bind_auth, capsys
):
    """On AWS the operator edits config/certdrop.toml: a site's table simply disappears."""
    config, store = lab
    source = str(config.source)
    fqdn = _place(
        config,
        store,
        "gone",
        "other.test",
        "other.test.",
        "left-by-a-gone-site________________________",
    )
    assert ChallengeJournal(store, "gone").entries()

    assert main(["-c", source, "run"]) == EXIT_OK
    assert re.search(
        r"^gone +not due .*no longer configured; TXT values removed", capsys.readouterr().out, re.M
    )

    left = txt_values(bind_auth.address, fqdn)
    assert "left-by-a-gone-site________________________" not in left, (
        f"values of a site no longer configured stay in DNS, unswept and unreported: {left}"
    )


def test_values_journalled_before_a_site_moved_to_dns_persist_01_are_still_removed(lab, bind_auth):
    config, store = lab
    fqdn = _place(
        config,
        store,
        "example",
        "example.test",
        "example.test.",
        "left-before-persist________________________",
    )
    # The site moves to dns-persist-01 (README: "a site whose issuer holds no DNS credentials");
    # the provider that placed the value is still configured.
    text = config.source.read_text()
    config.source.write_text(text.replace('provider = "dns"', 'challenge = "dns-persist-01"'))
    config = load(config.source)
    runner = Runner(config, store, parts.keystore(config), parts.publisher(config, store))

    for _ in range(2):
        runner.run_site("example")

    left = txt_values(bind_auth.address, fqdn)
    assert "left-before-persist________________________" not in left, (
        f"the journal is never swept once the site is not dns-01: {left}, journal "
        f"{ChallengeJournal(store, 'example').leftovers()}"
    )


def test_values_no_run_can_remove_of_a_site_no_longer_configured_are_shown_and_alerted(lab):
    """Placed through a provider that is gone too: no run can remove them, so status lists them
    under the old site's name and `txt_left` says so, until they are given up."""
    from dataclasses import replace

    from cloud.config import AlertsConfig
    from cloud.fleet.alerts.evaluate import current_alerts
    from cloud.fleet.status import collect

    config, store = lab
    record = TxtRecord(
        "old.test.", "_acme-challenge.old.test.", "left-by-old-site___________________________"
    )
    ChallengeJournal(store, "old").record("gone", [("old.test", record)], datetime.now(UTC))
    runner = Runner(config, store, parts.keystore(config), parts.publisher(config, store))

    outcome = runner.run_site("old")
    now = datetime.now(UTC)
    status = collect(config, store, now).site("old")
    alerting = replace(config, alerts=AlertsConfig(webhook_url="http://127.0.0.1:9/unused"))
    alerts = current_alerts(alerting, store, now)

    assert outcome.leftover_txt == (
        "_acme-challenge.old.test. left-by-old-site___________________________",
    )
    assert (status.health, status.leftover_txt) == ("TXT left", outcome.leftover_txt)
    assert [(a.kind, a.site) for a in alerts if a.site == "old"] == [("txt_left", "old")]

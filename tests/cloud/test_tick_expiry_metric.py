"""The tick's MinDaysToExpiry (the stack's ExpiryAlarm) counts only the configured sites."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloud.pipeline.tick import run_tick
from lab.sample_fleet import DAY, make_fleet

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class _Queue:
    def __init__(self):
        self.sent = []

    def send(self, bodies):
        self.sent += list(bodies)


def test_a_site_deleted_from_the_uploaded_config_does_not_keep_the_expiry_alarm_firing(tmp_path):
    fleet = make_fleet(tmp_path, NOW)
    # README "4. Add sites": the bucket's config is edited by hand and uploaded. A site taken
    # out that way keeps its schedule marker; its certificate runs out in 3 days, then is past.
    not_after = int((fleet.now + 3 * DAY).timestamp())
    check = int((fleet.now + timedelta(hours=1)).timestamp())
    fleet.store.put(f"state/schedule/retired@{check}@{not_after}@0123456789ab", b"")

    result = run_tick(fleet.config, fleet.store, _Queue(), fleet.now)

    assert "retired" not in fleet.config.sites
    assert "retired" not in result.days_to_expiry, (
        f"MinDaysToExpiry = {min(result.days_to_expiry.values()):.1f} comes from a site that is "
        "no longer configured: the ExpiryAlarm fires and can never clear"
    )

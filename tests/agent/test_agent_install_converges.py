"""An install cut short converges: the agent never reports a site installed while DSM does not
serve its certificate, never loses the service bindings agent.conf asks for when DSM fails
mid-install, and never calls a failure after the import "nothing was changed" (from an
independent review: each test failed before the fix)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from lab.agent_lab import SITE, AgentLab, fingerprint
from lab.dsm_emulator.envelope import ApiFailure
from nas_agent import cycle

DESCRIPTION = f"certdrop {SITE}"


@pytest.fixture
def agent_lab(tmp_path):
    lab = AgentLab(tmp_path)
    yield lab
    lab.close()


def _fail_next_binds(lab, count=1, code=117):
    """DSM answers the next `count` Service.set calls with an error (a busy/timed-out DSM)."""
    store = lab.dsm.emulator.store
    real_bind = store.bind
    left = [count]

    def bind(moves, same_id_removes):
        if left[0] > 0:
            left[0] -= 1
            raise ApiFailure(code)
        return real_bind(moves, same_id_removes)

    store.bind = bind


def _later():
    """A scheduled run 15 minutes on (runs within one second would blur last_error/last_success)."""
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=15)


def _holder_of(lab, service):
    for record in lab.dsm.emulator.store.records():
        if any(s["service"] == service for s in record.services):
            return record
    return None


def test_first_install_dsm_does_not_reload_is_not_reported_healthy_on_next_run(agent_lab):
    """Reference §5.4 / acme.sh#3456: DSM may list the new certificate but keep serving the old
    one; "the agent's post-import TLS check is necessary, not optional". DESIGN §7: "After
    import, a TLS handshake to DSM confirms the new certificate is served". The first run
    correctly exits 4, but leaves the new certificate in DSM (created, made default, nothing to
    restore), and the next run records it as installed without any handshake and exits 0."""
    lab = agent_lab
    lab.faults(keep_serving_old=True)
    plaintext = lab.plaintext(version=1)
    lab.publish(plaintext)
    old_served = lab.served()

    first = lab.run()
    assert first.exit_code == cycle.EXIT_ROLLED_BACK

    second = lab.run(now=_later)
    served = lab.served()
    assert served == old_served  # DSM still serves the factory certificate
    state = lab.state
    assert second.exit_code != cycle.EXIT_OK or served == fingerprint(plaintext), (
        f"run 2 exit {second.exit_code}, up_to_date={second.up_to_date}, "
        f"state failing={state.failing} site_errors={dict(state.site_errors)}"
        f" installed v{state.installed(SITE).version}; DSM serves {served[:16]}, "
        f"not the installed {fingerprint(plaintext)[:16]}"
    )


def test_dsm_error_on_service_binding_is_not_reported_as_nothing_changed(agent_lab):
    """README exit 6: "DSM was unreachable or refused the login ...; nothing was changed". A
    Service.set failure after a successful import exits 6 although DSM's certificate was
    replaced (and made default)."""
    lab = agent_lab
    lab.write_config(extra_site="services = FTPS")
    plaintext = lab.plaintext(version=1)
    lab.publish(plaintext)
    _fail_next_binds(lab)

    result = lab.run()
    ours = [r for r in lab.dsm.emulator.store.records() if r.desc == DESCRIPTION]
    assert not (result.exit_code == cycle.EXIT_DSM and ours), (
        f"exit {result.exit_code} ('nothing was changed') but DSM now holds {DESCRIPTION!r}"
        f" (default={ours[0].is_default if ours else None}); failures={result.failures}"
    )


def test_services_are_bound_on_the_run_after_a_failed_binding(agent_lab):
    """DESIGN §7: import "keeping its id so the services bound to it keep using it"; README:
    "bind the configured services". When Service.set fails once, the next run finds DSM holding
    the certificate, records it as up to date, and never binds FTPS: it stays on the old cert."""
    lab = agent_lab
    lab.write_config(extra_site="services = FTPS")
    plaintext = lab.plaintext(version=1)
    lab.publish(plaintext)
    _fail_next_binds(lab)
    lab.run()

    second = lab.run()
    holder = _holder_of(lab, "ftpd")
    assert holder is not None and holder.desc == DESCRIPTION, (
        f"run 2 exit {second.exit_code} (up_to_date={second.up_to_date}); FTPS is bound to"
        f" {holder.id if holder else None} desc={holder.desc if holder else None!r},"
        f" not to {DESCRIPTION!r}"
    )


def test_interrupted_install_with_dsm_not_reloading_is_not_reported_healthy(agent_lab):
    """An install cut short after DSM took the certificate (here: DSM refused Service.set; a
    killed run is the same) skips the TLS confirmation; the next run must still confirm before
    reporting success ("An agent killed at any step converges on its next run")."""
    lab = agent_lab
    lab.write_config(extra_site="services = FTPS")
    lab.faults(keep_serving_old=True)
    plaintext = lab.plaintext(version=1)
    lab.publish(plaintext)
    old_served = lab.served()
    _fail_next_binds(lab)
    lab.run()

    second = lab.run(now=_later)
    served = lab.served()
    assert served == old_served
    assert second.exit_code != cycle.EXIT_OK, (
        f"run 2 exit 0 ({second.up_to_date}) while DSM serves {served[:16]},"
        f" not {fingerprint(plaintext)[:16]}"
    )

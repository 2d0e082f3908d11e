"""An install cut short converges: the agent never reports a site installed while DSM does not
serve its certificate, never loses the service bindings agent.conf asks for when DSM fails
mid-install, and never calls a failure after the import "nothing was changed" (from an
independent review: each test failed before the fix).

From a later fault campaign (each test failed before its fix, too): a failed renewal never puts
an expired certificate back, nor a stale copy of an older one; a full disk after the import is
an error with a meaning, not a crash; a configured service DSM does not have is an error, not a
silent success; one site's ambiguous DSM description does not stop the other sites."""

from __future__ import annotations

import errno
from datetime import datetime, timedelta, timezone

import pytest

from lab.agent_lab import PASSWORD, SITE, USER, AgentLab, fingerprint, now
from lab.dsm_emulator.envelope import ApiFailure
from nas_agent import cli, cycle, local_copies
from nas_agent.config import load_config
from nas_agent.dsm.client import DsmClient
from nas_agent.dsm.errors import DsmTransportError

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


class _ResetAfterImport(DsmClient):
    """DSM takes the import, then the connection is reset on the next call (DSM's web server
    restarting after an import, a flaky link): one fault, then DSM answers again."""

    imported = False
    fired = False

    def import_certificate(self, *args, **kwargs):
        result = super().import_certificate(*args, **kwargs)
        self.imported = True
        return result

    def certificate(self, session, cert_id):
        if self.imported and not self.fired:
            self.fired = True
            raise DsmTransportError(f"{self.base_url}/webapi/entry.cgi", "connection reset")
        return super().certificate(session, cert_id)


def _reset_after_import(lab):
    config = load_config(str(lab.config_path)).dsm
    return lambda: _ResetAfterImport(config.url, verify=config.verify, timeout=config.timeout)


def test_a_failed_renewal_never_puts_an_expired_certificate_back_over_the_valid_new_one(
    agent_lab,
):
    """v1 was installed while valid and has expired since (the issuer was down); v2 arrives, DSM
    takes the import and the connection is reset on the next call. The agent "rolled back" by
    importing its copy of v1 again, unchecked: DSM served the expired v1 instead of the valid v2
    it had accepted. An expired (or not yet valid) backup is not put back now."""
    lab = agent_lab
    real = now()
    expired = lab.plaintext(
        version=1, not_before=real - timedelta(days=10), not_after=real - timedelta(hours=1)
    )
    lab.publish(expired)
    assert lab.run(now=lambda: real - timedelta(days=2)).installed == (SITE,)
    renewal = lab.plaintext(version=2)
    lab.publish(renewal)

    failed = lab.run(dsm_client=_reset_after_import(lab))

    assert failed.exit_code == cycle.EXIT_ROLLED_BACK
    assert "is not valid now, so it was not put back" in failed.failures[0]
    assert lab.served() == fingerprint(renewal)
    # The next run finds DSM holding it, confirms and records it.
    assert lab.run().exit_code == cycle.EXIT_OK
    assert lab.state.sites[SITE].version == 2


def test_a_full_disk_after_the_import_is_recorded_and_the_stale_copy_is_no_backup(
    agent_lab, monkeypatch
):
    """DSM imported v2 and serves it, then the agent's copy of it (the next install's backup)
    could not be written: a bare OSError ended `run --once` with a traceback (exit 1, "a bug"),
    no report, and a state naming v1. Now: exit 4 (the install is not all it should be; not 2,
    which would stop the service loop for good over a disk that fills and empties), v2
    recorded. And the copy left behind, v1's, is not taken as the backup of the next renewal:
    restored after a failure, it would have put the older v1 back over v2."""
    lab = agent_lab
    lab.publish(lab.plaintext(version=1))
    assert lab.run().exit_code == cycle.EXIT_OK
    second = lab.plaintext(version=2)
    lab.publish(second)

    def disk_full(path, data, mode):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(local_copies, "write_atomic", disk_full)
        code = cli.main(["--config", str(lab.config_path), "run", "--once"])

    assert code == cycle.EXIT_ROLLED_BACK
    assert lab.served() == fingerprint(second)
    assert lab.state.sites[SITE].version == 2
    assert lab.state.site_errors[SITE].code == "state.unwritable"

    lab.publish(lab.plaintext(version=3))
    failed = lab.run(dsm_client=_reset_after_import(lab))

    assert failed.exit_code == cycle.EXIT_ROLLED_BACK
    assert "the previous certificate was restored" in failed.failures[0]
    assert lab.served() == fingerprint(second)


def test_a_configured_service_dsm_does_not_list_is_an_error_not_a_silent_install(agent_lab):
    """README: `services = FTPS, WebDAV` binds those DSM services to the site's certificate. On
    a DSM listing no WebDAV (a name typed differently, a package not installed) the agent bound
    FTPS, said nothing of WebDAV and exited 0: a non-default certificate is not confirmed by a
    handshake, so WebDAV would serve its old certificate until it expired, unreported. Now the
    bindings are read again after binding; a configured service not on the certificate is the
    site's error (exit 4, naming what DSM lists), and the install is tried again next run."""
    lab = agent_lab
    text = lab.config_path.read_text().replace(
        "make_default = true", "make_default = false\nservices = FTPS, WebDAV"
    )
    lab.config_path.write_text(text)
    lab.publish(lab.plaintext(version=1))

    result = lab.run()

    assert result.exit_code == cycle.EXIT_ROLLED_BACK
    assert "WebDAV are not bound" in result.failures[0] and "FTPS" in result.failures[0]
    assert lab.state.site_errors[SITE].code == "install.services_not_bound"
    assert SITE not in lab.state.sites
    assert _holder_of(lab, "ftpd").desc == DESCRIPTION
    # Fixed in agent.conf, the next run records the certificate DSM already holds.
    lab.config_path.write_text(text.replace("services = FTPS, WebDAV", "services = FTPS"))
    imports = lab.imports()
    assert lab.run().exit_code == cycle.EXIT_OK
    assert lab.imports() == imports and lab.state.sites[SITE].version == 1


def test_a_duplicate_description_of_one_site_does_not_stop_the_other_sites_install(agent_lab):
    """DSM holds two certificates described "certdrop example.test" (an admin's import, an old
    script). The error left the whole DSM session: every site not done yet was failed as "DSM
    unreachable" (exit 6, "nothing changed"), so second.test was never installed, run after run;
    and the message advised configuring a certificate id agent.conf has no key for. Now it is
    that site's own error, naming the description setting, and the other sites are installed."""
    lab = agent_lab
    lab.config_path.write_text(
        lab.config_path.read_text() + "\n[site:second.test]\nhostnames = www.second.test\n"
    )
    client = DsmClient(lab.dsm.http_url, timeout=10)
    with client.logged_in(USER, PASSWORD) as session:
        for _ in range(2):
            stray = lab.world.pki.issue(("example.test",))
            client.import_certificate(
                session,
                key_pem=stray.key_pem.encode(),
                cert_pem=stray.leaf_pem.encode(),
                chain_pem=stray.chain_pem.encode(),
                desc=DESCRIPTION,
            )
    client.close()
    lab.publish(lab.plaintext(version=1))
    lab.publish(lab.plaintext(version=1, site="second.test", names=("*.second.test",)))

    result = lab.run()

    assert result.installed == ("second.test",)
    assert result.exit_code == cycle.EXIT_ROLLED_BACK
    assert lab.state.site_errors[SITE].code == "dsm.certificate_ambiguous"
    assert "description in agent.conf" in lab.state.site_errors[SITE].message

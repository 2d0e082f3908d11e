# Over 300 lines: backup, import, bind, confirm and restore are one sequence of failure paths.
"""Installing one opened bundle into DSM: back up, import in place, bind, confirm, or roll back.

The certificate DSM holds under the site's description is replaced by id, so every service bound
to it keeps using it. First it is compared with the new one (`nas_agent.held_certificate`): an
older certificate is refused (`OlderThanInstalled`) and the very same one is not imported again,
whatever the agent's state says, though its services are bound and its serving confirmed as
after an import (an earlier run may have stopped before). Before replacing, the agent keeps a
backup of what it replaces (its own copy of what it installed last time, else DSM's export).
After the import a TLS handshake must show the new leaf within `confirm_timeout`; if it does
not, the import broke off halfway, or DSM failed after it (binding a service), the backup is
imported back into the same id, unless it is not valid now: DSM then keeps what the import left,
which is no worse than the expired one. DSM is never left without a valid certificate it had:
it holds either the new one or the restored one, and both are checked certificates.

The backup is the agent's own copy only while that copy is what DSM holds (`_backup`): a copy
that could not be updated (a full disk) is older than DSM's. The configured services must
be on the certificate once bound (`ServicesNotBound`, after the copy is saved): a service DSM
does not list is not silently left on its old certificate.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator
from urllib.parse import urlsplit

from nas_agent.config.types import DsmConfig, SiteConfig
from nas_agent.confirm import wait_until_served
from nas_agent.dsm.client import DsmClient
from nas_agent.dsm.device import DeviceIdFile
from nas_agent.dsm.errors import DsmApiError, DsmError, DsmTransportError
from nas_agent.dsm.types import (
    Certificate,
    ExportedCertificate,
    ImportResult,
    Session,
    read_export_archive,
)
from nas_agent.errors import (
    ConfirmFailed,
    InstallFailed,
    OlderThanInstalled,
    Restore,
    ServicesNotBound,
    StateUnwritable,
    TempAdminError,
)
from nas_agent.held_certificate import LeafFacts, Verdict, could_be_same, judge
from nas_agent.local_copies import LocalCopies, Material
from nas_agent.temp_admin import TempAdmin

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Installed:
    certificate_id: str
    confirmed: bool  # False when the certificate is not what DSM's HTTPS port serves
    dsm_version: str  # as far as the API tells: its Auth API's major version
    imported: bool = True  # False: DSM already held this very certificate, nothing was imported
    # DSM holds it, but the agent's copy of it (the next install's backup) could not be written.
    copy_unsaved: StateUnwritable | None = None


class DsmInstaller:
    def __init__(
        self,
        client: DsmClient,
        dsm: DsmConfig,
        password: str | None,
        copies: LocalCopies,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        temp_admin: TempAdmin | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        """`password` is the configured account's; None in temp-admin mode (`dsm.temp_admin`),
        where `temp_admin` runs DSM's tools (default: `TempAdmin()`). `clock` times the
        confirmation; `now` (wall time) judges whether a backup is still valid."""
        self.client = client
        self.dsm = dsm
        self.password = password
        self.copies = copies
        self.clock = clock
        self.sleep = sleep
        self.now = now
        self.temp_admin = temp_admin or TempAdmin()

    @contextlib.contextmanager
    def session(self) -> Iterator[Callable[[SiteConfig, Material], Installed]]:
        """One DSM login for all of a run's installs (logins can take a minute on a busy NAS,
        and each counts towards DSM's auto-block), logged out exactly once whatever happens.

        Entering raises DsmError when DSM cannot be reached or refuses the login (nothing
        changed); the install function it yields raises OlderThanInstalled when DSM holds a newer
        certificate for the site (nothing imported), InstallFailed when an import or its
        confirmation failed, and DsmError when DSM stopped answering. In temp-admin mode
        entering also raises TempAdminError, and the temporary account is deleted after the
        logout, whatever happens.
        """
        if self.dsm.temp_admin:
            with self._temp_admin_session() as session:
                yield lambda site, new: self._install(session, site, new)
            return
        device_file = DeviceIdFile(self.dsm.device_id_file)
        with self.client.logged_in(
            self.dsm.username, self.password or "", device_file=device_file
        ) as session:
            _log.info("logged in to DSM as %s", self.dsm.username)
            yield lambda site, new: self._install(session, site, new)

    @contextlib.contextmanager
    def _temp_admin_session(self) -> Iterator[Session]:
        host = urlsplit(self.dsm.url).hostname or ""
        with self.temp_admin.user(host) as admin:
            self.client.discover()  # before the 2FA window, which must hold the login alone
            session = None
            try:
                # Enforced 2FA is lifted for the login request alone (reference §8.1 step 4).
                with self.temp_admin.login_window(self.dsm.otp_journal_file):
                    session = self.client.login(admin.username, admin.password)
            except TempAdminError:
                if session is not None:  # logged in, but the 2FA policy was not restored
                    self._logout(session)
                raise
            _log.info("logged in to DSM as temporary administrator %s", admin.username)
            try:
                yield session
            finally:
                self._logout(session)

    def _logout(self, session: Session) -> None:
        try:
            self.client.logout(session)
        except DsmError as exc:
            _log.warning("DSM logout failed: %s", exc)

    def install(self, site: SiteConfig, new: Material) -> Installed:
        with self.session() as install:
            return install(site, new)

    def _install(self, session: Session, site: SiteConfig, new: Material) -> Installed:
        """Raises OlderThanInstalled, before anything changed, when DSM holds a newer one."""
        target = self.client.find_by_description(session, site.description)
        if target is not None and self._held_is_same(session, site, target, new):
            _log.info("DSM certificate %s is already this certificate: not imported", target.id)
            # An earlier run imported it and stopped before it was done (killed, DSM failing
            # mid-way, or the certificate not served in time): binding and confirming are done
            # now, so the site is never recorded as installed while DSM does not serve it.
            try:
                confirmed, unbound = self._bind_and_confirm(session, site, target.id, new)
            except (ConfirmFailed, DsmError) as exc:
                raise InstallFailed(site.id, str(exc), Restore.NOTHING) from exc
            return self._done(site, new, target.id, confirmed, unbound, imported=False)
        backup = self._backup(session, site, target)
        if target is None:
            _log.info("no DSM certificate described %r yet: creating it", site.description)
        else:
            kept = "kept" if backup is not None else "not available"
            _log.info("replacing DSM certificate %s in place (backup %s)", target.id, kept)
        try:
            result = self._put(session, site, new, target, as_default=site.make_default)
        except DsmApiError as exc:
            # DSM refused the upload: its store is as it was (reference case 31).
            raise InstallFailed(site.id, str(exc), Restore.NOTHING) from exc
        except DsmTransportError as exc:
            # The connection broke off: the import may or may not have happened.
            restored = self._restore(session, site, target, backup)
            raise InstallFailed(site.id, str(exc), restored) from exc
        _log.info("imported as DSM certificate %s", result.id)
        try:
            confirmed, unbound = self._bind_and_confirm(session, site, result.id, new)
        except (ConfirmFailed, DsmError) as exc:
            # DSM took the certificate: whatever failed after that, the previous one goes back.
            restored = self._restore(session, site, target, backup)
            raise InstallFailed(site.id, str(exc), restored) from exc
        return self._done(site, new, result.id, confirmed, unbound, imported=True)

    def _bind_and_confirm(
        self, session: Session, site: SiteConfig, cert_id: str, new: Material
    ) -> tuple[bool, ServicesNotBound | None]:
        """Binds the site's services to DSM certificate `cert_id`, then confirms DSM serves `new`
        (`_confirm`). Returns that confirmation, and the error to raise once the install is
        otherwise done when configured services are not on the certificate after all. Raises
        DsmError, ConfirmFailed."""
        listed = self._bind(session, site, cert_id)
        current = self.client.certificate(session, cert_id)  # read again: what DSM did bind
        on_it = {n.lower() for s in current.services for n in (s.service, s.display_name)}
        unbound = [name for name in site.services if name.lower() not in on_it]
        confirmed = self._confirm(site, current, new)
        return confirmed, ServicesNotBound(site.id, unbound, listed) if unbound else None

    def _done(
        self,
        site: SiteConfig,
        new: Material,
        cert_id: str,
        confirmed: bool,
        unbound: ServicesNotBound | None,
        *,
        imported: bool,
    ) -> Installed:
        """DSM holds `new`: the agent's copy of it is saved (the next install's backup), then
        services left unbound are raised."""
        copy_unsaved = None
        try:
            self.copies.save(site.id, new)
        except StateUnwritable as exc:
            _log.error("site %s: DSM holds the new certificate, but %s", site.id, exc)
            copy_unsaved = exc
        if unbound is not None:
            raise unbound
        return Installed(cert_id, confirmed, self._dsm_version(), imported, copy_unsaved)

    def _dsm_version(self) -> str:
        # DSM names no version without another API; its Auth API's version tells 6 from 7.
        auth = self.client.discover().auth_max_version
        return f"DSM {6 if auth <= 6 else 7} (Auth API v{auth})"

    def _held_is_same(
        self, session: Session, site: SiteConfig, target: Certificate, new: Material
    ) -> bool:
        """Whether `target`, what DSM holds under the site's description, is `new` itself.
        Raises OlderThanInstalled when it is newer than `new` (`nas_agent.held_certificate`)."""
        if target.valid_from is None:
            _log.warning(
                "DSM lists no readable valid_from for certificate %s: cannot tell whether the new"
                " certificate is newer; installing it",
                target.id,
            )
            return False
        facts = new.facts()
        held = LeafFacts(target.valid_from, target.valid_till)
        if could_be_same(facts, held):
            held = LeafFacts(
                held.not_before, held.not_after, self._exported_sha256(session, target)
            )
        verdict = judge(facts, held)
        if verdict is Verdict.OLDER:
            raise OlderThanInstalled(facts.not_before, held.not_before, target.id, site=site.id)
        return verdict is Verdict.SAME

    def _exported_sha256(self, session: Session, target: Certificate) -> str | None:
        exported = self._export(session, target, "to compare")
        return exported.sha256 if exported is not None else None

    def _export(self, session: Session, target: Certificate, why: str) -> Material | None:
        """DSM's export of `target`; None (logged) when DSM cannot give it."""
        try:
            exported: ExportedCertificate = read_export_archive(
                self.client.export(session, target.id)
            )
        except (DsmError, ValueError) as exc:
            _log.warning("DSM certificate %s could not be exported %s: %s", target.id, why, exc)
            return None
        return Material(exported.key_pem, exported.cert_pem, exported.chain_pem)

    def _backup(
        self, session: Session, site: SiteConfig, target: Certificate | None
    ) -> Material | None:
        """What goes back if the install fails: the agent's own copy of what it installed last,
        while that copy is what DSM holds, else DSM's export. A copy that could not be updated
        after an install (a full disk) is not, and restored it would put an older one back. Told
        by the dates DSM lists, and when they match by the export's fingerprint; when neither can
        be read, the copy is taken (as before copies were checked)."""
        if target is None:
            return None  # a new certificate: nothing is replaced
        own = self.copies.load(site.id)
        held_from, held_till = target.valid_from, target.valid_till
        if own is not None:
            if held_from is None or held_till is None:
                return own
            if not could_be_same(own.facts(), LeafFacts(held_from, held_till)):
                own = None
        exported = self._export(session, target, "as a backup")
        if own is None:
            return exported
        if exported is None or exported.sha256 == own.sha256:
            return own
        return exported

    def _bind(self, session: Session, site: SiteConfig, cert_id: str) -> list[str]:
        """Moves each service named in the site's config onto the certificate; returns the
        display names of every service DSM lists (for a message naming what is there)."""
        if not site.services:
            return []
        wanted = {name.lower() for name in site.services}
        listed: list[str] = []
        for cert in self.client.list_certificates(session):
            listed.extend(service.display_name for service in cert.services)
            if cert.id == cert_id:
                continue
            for service in cert.services:
                if wanted & {service.service.lower(), service.display_name.lower()}:
                    self.client.bind_service(session, service, cert.id, cert_id)
                    _log.info("service %s bound to the certificate", service.display_name)
        return sorted(set(listed))

    def _confirm(self, site: SiteConfig, current: Certificate, new: Material) -> bool:
        """True once a TLS handshake shows DSM serving `new`; False when `current` is not DSM's
        default, which a handshake cannot check. Raises ConfirmFailed at the deadline."""
        if not current.is_default:
            # DSM's HTTPS port serves the default certificate; others are served by the services
            # bound to them, which a handshake here cannot see.
            _log.info("certificate %s is not DSM's default: not confirmed by handshake", current.id)
            return False
        host, port = _https_address(self.dsm.url)
        wait_until_served(
            host,
            port,
            site.sni,
            new.sha256,
            deadline=self.clock() + self.dsm.confirm_timeout,
            clock=self.clock,
            sleep=self.sleep,
        )
        return True

    def _put(
        self,
        session: Session,
        site: SiteConfig,
        material: Material,
        target: Certificate | None,
        *,
        as_default: bool = False,
    ) -> ImportResult:
        """Imports `material` under the site's description, in place of `target` when given."""
        return self.client.import_certificate(
            session,
            key_pem=material.key_pem,
            cert_pem=material.cert_pem,
            chain_pem=material.chain_pem,
            desc=site.description,
            replace=target,
            as_default=as_default,
        )

    def _restore(
        self,
        session: Session,
        site: SiteConfig,
        target: Certificate | None,
        backup: Material | None,
    ) -> Restore:
        if target is None:
            return Restore.NOTHING  # nothing was replaced
        if backup is None:
            return Restore.FAILED
        facts, now = backup.facts(), self.now()
        if now < facts.not_before or (facts.not_after is not None and now >= facts.not_after):
            _log.error(
                "the previous certificate (valid %s to %s) is not valid now: not put back into"
                " DSM certificate %s",
                facts.not_before,
                facts.not_after,
                target.id,
            )
            return Restore.NOT_VALID
        try:
            self._put(session, site, backup, target)
        except DsmError as exc:
            _log.error("restoring DSM certificate %s failed: %s", target.id, exc)
            return Restore.FAILED
        _log.warning("restored the previous certificate into DSM certificate %s", target.id)
        return Restore.RESTORED


def _https_address(url: str) -> tuple[str, int]:
    """Where DSM's HTTPS listener is: the configured URL's host, its port when https, else 5001."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return parts.hostname or "127.0.0.1", parts.port or 443
    return parts.hostname or "127.0.0.1", 5001

# Over 300 lines: one run's steps and the failure paths between them, sharing the run's state.
"""One agent cycle: poll the index, verify and open what is new, install it into DSM, report.

    poll index.json (If-None-Match) ─ unchanged ─► (no install) ─────────────┐
        │ changed                                                            │
        ▼                                                                    │
    per configured site: entry newer than installed? ─ no ─► (no install) ───┤
        │ yes: verify the signed entry; fetch, open and check the bundle     │
        ▼                                                                    │
    DSM: holds a newer one (refused) or this one (recorded)? ─ yes ─► ───────┤
        │ no: back up, import in place, bind services, TLS-confirm, or undo  │
        ▼                                                                    ▼
    agent custody: key requests (when the index changed), a pending key and posted CSR
        ▼      for each requested site (after its install: the next renewal's)
    no DSM login in this run and the credential check due: log in, log out
        ▼
    state (atomically), signed status report to the source when writable

The index ETag is remembered only when every site was handled, so a failed install is retried
on the next run even though the index did not change; and it is used only under the
configuration it was recorded with (`index_scope`), so a site added to agent.conf, or a site id
corrected, is looked for at the next run. Index entries for sites agent.conf does not name are
logged and reported (`unconfigured_sites`), never installed. State is written after each
install, so an agent killed at any step converges on its next run.

Sites in agent custody (docs/key-custody.md, `nas_agent.custody`): a `certdrop-leaf-v1` entry
is opened with the key the agent made for it (`custody.key_store`), and once installed that key
becomes the site's current one: recorded in the site's keys file before the state, so a run
stopped between the two installs (records) the certificate again. A keys file left behind anyway
(an older agent, a write that failed) is mended by the custody step, which promotes a pending
key the installed certificate has. A key-requests or CSR problem is a failure like a refused
bundle: reported by its `keyreq.*`/`csr.*` code, and the index is read again next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from nas_agent import store_layout
from nas_agent._encoding import format_timestamp
from nas_agent.config import AgentConfig, check_runnable, dsm_password
from nas_agent.config.digest import index_scope
from nas_agent.config.types import SiteConfig
from nas_agent.credential_check import check_due, credentials_basis, next_check
from nas_agent.errors import (
    AgentError,
    BundleError,
    IndexDowngrade,
    IndexExpired,
    InstallFailed,
    KeyFileError,
    MalformedIndex,
    MalformedSealedObject,
    OlderThanInstalled,
    ServicesNotBound,
    SiteNotInIndex,
    StaleVersion,
    StateUnwritable,
    TempAdminError,
    VersionConflict,
)
from nas_agent.keys import AgentKeys, key_id, load_agent_keys
from nas_agent.sources import Fetched, Source, open_source
from nas_agent.sources.errors import SourceError, SourceTooLarge
from nas_agent.state import AgentState, IndexSeen, load_state, save_state
from nas_agent.status import signed_status
from nas_agent.temp_admin import TempAdmin

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from nas_agent.bundle import Index, IndexEntry
    from nas_agent.custody.key_store import KeyStore
    from nas_agent.dsm.client import DsmClient
    from nas_agent.install import DsmInstaller, Installed
    from nas_agent.local_copies import Material

# An idle run (the index unchanged) imports none of the bundle, DSM or install code: on a NAS
# that is most runs, and those modules load cryptography's X.509 and requests. They are imported
# where a run first needs them.

_log = logging.getLogger(__name__)

EXIT_OK = 0  # nothing to do, or every new certificate installed
EXIT_BUG = 1
EXIT_CONFIG = 2  # configuration, key files, secrets files or the state file
EXIT_REFUSED = 3  # a bundle was refused (tampered, replayed, wrong agent, expired, names)
EXIT_ROLLED_BACK = 4  # DSM import or confirmation failed; the previous certificate stays
EXIT_SOURCE = 5  # the source (S3, HTTPS, share) was unreachable or refused us
EXIT_DSM = 6  # DSM unreachable or the login refused (to install, or checked); nothing changed
EXIT_FROZEN = 7  # the index expired: the issuer stopped signing it, or an old copy is served

# When several sites fail differently, the exit code names the most serious.
_SEVERITY = (EXIT_FROZEN, EXIT_ROLLED_BACK, EXIT_REFUSED, EXIT_DSM, EXIT_SOURCE)


@dataclass(frozen=True)
class CycleResult:
    exit_code: int
    installed: tuple[str, ...] = ()
    up_to_date: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()  # one line per failed site or step
    index_unchanged: bool = False
    requests: int = 0  # made to the source for reading (the status report not counted)
    body_bytes: int = 0


def run_cycle(
    config: AgentConfig,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    dsm_client: Callable[[], DsmClient] | None = None,
    environ: dict | None = None,
    temp_admin: TempAdmin | None = None,
) -> CycleResult:
    """One whole cycle. Raises AgentError subclasses only for problems of the agent's own set-up
    (configuration, key files, state file); everything else is a CycleResult. `temp_admin`
    runs DSM's tools when `dsm.temp_admin` is set (default: `TempAdmin()`)."""
    environ = dict(os.environ) if environ is None else environ
    issuer_key = check_runnable(config, environ)
    keys = load_agent_keys(config.agent.keys_dir, config.agent.id)
    with exclusive_run(config.agent.state_file) as alone:
        if not alone:
            _log.info("another run of this agent is in progress: leaving it alone")
            return CycleResult(EXIT_OK)
        state = load_state(config.agent.state_file)
        # A run killed while DSM's 2FA was lifted for its login left it off: put it back first.
        (temp_admin or TempAdmin()).recover(config.dsm.otp_journal_file)
        with open_source(config.source.url, config.agent.id, **config.source.options()) as source:
            cycle = _Cycle(
                config, issuer_key, keys, source, state, now, dsm_client, environ, temp_admin
            )
            result = cycle.run()
            counters = source.counters
            _report(
                keys,
                source,
                cycle.state,
                now(),
                config.agent.poll_interval,
                cycle.csr_pending(),
            )
    return replace(result, requests=counters.requests, body_bytes=counters.body_bytes)


@contextlib.contextmanager
def exclusive_run(state_file: str, *, wait: bool = False) -> Iterator[bool]:
    """Whether this run is the only one: a slow run (DSM logins can take a minute) must not
    overlap the next scheduled one. The lock is the kernel's, so a killed run leaves none.
    With `wait` (`rekey`, run by hand), waits for the run in progress instead."""
    path = f"{state_file}.lock"
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateUnwritable(path, f"cannot create the run lock: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(handle)


@dataclass(frozen=True)
class _Ready:
    """A site's bundle, verified and opened, waiting for DSM."""

    site: SiteConfig
    entry: IndexEntry
    material: Material = field(repr=False)
    held_key: str | None = None  # agent custody: the key installed, "pending" or "current"


class _Cycle:
    def __init__(
        self,
        config: AgentConfig,
        issuer_key: ed25519.Ed25519PublicKey,
        keys: AgentKeys,
        source: Source,
        state: AgentState,
        now: Callable[[], datetime],
        dsm_client: Callable[[], DsmClient] | None,
        environ: dict,
        temp_admin: TempAdmin | None = None,
    ):
        self.config = config
        self.temp_admin = temp_admin
        self.anchor_key = issuer_key  # configured; the index's rotations may lead further
        self.issuer_key = issuer_key  # what entries are verified with
        self.keys = keys
        self.source = source
        self.state = state
        self.now = now
        self.environ = environ
        self.dsm_client = dsm_client or (lambda: _dsm_client(config))
        self._installer: DsmInstaller | None = None
        # This run's DSM login: None before any, then whether DSM accepted it.
        self._dsm_logged_in: bool | None = None

    def run(self) -> CycleResult:
        return self._check_dsm(self._poll())

    def _poll(self) -> CycleResult:
        scope = index_scope(self.config)
        etag = self.state.index_etag
        if etag is not None and self.state.index_scope != scope:
            _log.info("agent.conf changed since the index was last read: reading it again")
            etag = None
        seen = self.state.index
        if etag is not None and seen and self.state.key_requests_read_under != seen.issued_at:
            _log.info("no key requests read under this index yet: reading it again")
            etag = None
        try:
            fetched = self.source.fetch(store_layout.INDEX, etag=etag)
        except SourceTooLarge as exc:
            # No index is that large: what the source serves is refused, as a malformed one is.
            malformed = MalformedIndex(exc.reason, agent_id=self.keys.agent_id)
            return self._fail(EXIT_REFUSED, malformed)
        except SourceError as exc:
            return self._fail(EXIT_SOURCE, exc)
        if not isinstance(fetched, Fetched):
            seen = self.state.index
            if seen is not None and self.now() >= seen.expires_at:
                # Not modified, but what we hold has expired: frozen as much as a stale copy.
                return self._fail(
                    EXIT_FROZEN,
                    IndexExpired(seen.expires_at, self.now(), agent_id=self.keys.agent_id),
                )
            if seen is None:  # what we hold is a v1 index: only inside the upgrade window
                try:
                    self._v1_allowed()
                except IndexDowngrade as exc:
                    return self._fail(EXIT_REFUSED, exc)
            _log.info("index unchanged: nothing to do")
            if self.state.unconfigured_sites:
                self._log_unconfigured(self.state.unconfigured_sites, logging.INFO)
            self._save(self.state.with_success(self.now()))
            return CycleResult(EXIT_OK, index_unchanged=True)
        _log.info("index changed: checking %d site(s)", len(self.config.sites))
        from nas_agent.bundle import parse_index

        try:
            index = parse_index(fetched.body)
            self._trust_index(index)
        except IndexExpired as exc:
            return self._fail(EXIT_FROZEN, exc)
        except BundleError as exc:
            return self._fail(EXIT_REFUSED, exc)
        self._note_unconfigured(index)
        # First everything that needs no DSM, then one DSM session for all the installs.
        outcomes: dict[str, tuple[int, str]] = {}
        ready: list[_Ready] = []
        for site in self.config.sites.values():
            opened = self._open(index, site)
            if isinstance(opened, _Ready):
                ready.append(opened)
            else:
                outcomes[site.id] = opened
        if ready:
            outcomes.update(self._install(ready))
        installed: list[str] = []
        current: list[str] = []
        failed: list[str] = []
        failures: list[str] = []
        codes: list[int] = []
        for site_id in self.config.sites:
            code, message = outcomes[site_id]
            if code == EXIT_OK:
                (installed if message == "installed" else current).append(site_id)
            else:
                failed.append(site_id)
                failures.append(f"{site_id}: {message}")
                codes.append(code)
        if index.format_version == 2:
            for problem_site, code, message in self._custody(index):
                failed.extend([problem_site] if problem_site else [])
                failures.append(f"{problem_site or 'key requests'}: {message}")
                codes.append(code)
        # Every configured site was just tried: the report names only those that failed now.
        state = self.state.with_site_errors_of(failed)
        if codes:
            self._save(state)
            return CycleResult(
                min(codes, key=_SEVERITY.index), tuple(installed), tuple(current), tuple(failures)
            )
        self._save(state.with_index_etag(fetched.etag, scope).with_success(self.now()))
        return CycleResult(EXIT_OK, tuple(installed), tuple(current))

    def _trust_index(self, index: Index) -> None:
        """Verifies the index as a whole and sets the issuer key its entries are checked with.

        v2: follow the key rotations from the configured key (and through the key the state
        remembers), then signature, addressee, expiry, and not older than the last accepted.
        v1: only during the upgrade window, and never once a v2 index was accepted."""
        from nas_agent.bundle import verify_index
        from nas_agent.bundle.rotation import follow_chain

        now = self.now()
        seen = self.state.index
        if index.format_version == 1:
            self._v1_allowed()
            return
        remembered = seen.trust if seen is not None else None
        trusted = follow_chain(self.anchor_key, index.rotations, remembered=remembered)
        # The index ratchet belongs to the key that set it: a rotation resets it.
        accepted = seen.issued_at if seen is not None and seen.trust == trusted.trust else None
        verify_index(
            index,
            agent_id=self.keys.agent_id,
            issuer_public_key=trusted.key,
            now=now,
            accepted_issued_at=accepted,
        )
        if remembered is not None and remembered.key_id != trusted.key_id:
            _log.info(
                "issuer key rotated: now following %s (rotation %d)",
                trusted.key_id,
                trusted.trust.sequence,
            )
        self.issuer_key = trusted.key
        assert index.issued_at is not None and index.expires_at is not None
        self._save(
            self.state.with_index(IndexSeen(index.issued_at, index.expires_at, trusted.trust))
        )

    def _v1_allowed(self) -> None:
        """Raises IndexDowngrade unless a v1 index may be read now: inside the upgrade window
        (`accept_index_v1_until`), and only while no v2 index was ever accepted."""
        until = self.config.agent.accept_index_v1_until
        if self.state.index is not None:
            why = "a v2 index was accepted before"
        elif until is None:
            why = "agent.conf has no accept_index_v1_until"
        elif self.now() >= until:
            why = "accept_index_v1_until has passed"
        else:
            return
        raise IndexDowngrade(
            f"the index is in the old format v1 (no signed expiry), refused: {why}",
            agent_id=self.keys.agent_id,
        )

    def _note_unconfigured(self, index: Index) -> None:
        """Entries for sites agent.conf has no section for: logged and reported, not installed.
        Only entries that verify (signed by the pinned issuer, for this agent) are named."""
        from nas_agent.bundle import verify_entry

        found: list[str] = []
        for entry in index.entries:
            if entry.site in self.config.sites:
                continue
            try:
                verify_entry(
                    entry,
                    agent_id=self.keys.agent_id,
                    issuer_public_key=self.issuer_key,
                    installed_version=None,
                )
            except BundleError as exc:
                _log.warning("index entry for %s, a site not in agent.conf: %s", entry.site, exc)
                continue
            found.append(entry.site)
        if found:
            self._log_unconfigured(found, logging.WARNING)
        self._save(self.state.with_unconfigured_sites(found))

    def _log_unconfigured(self, sites: Sequence[str], level: int) -> None:
        _log.log(
            level,
            "the index holds certificates for %s, not configured here: add a [site:<id>] section"
            " to %s for each one this NAS should install",
            ", ".join(sites),
            self.config.path,
        )

    def _open(self, index, site: SiteConfig) -> _Ready | tuple[int, str]:
        """The site's new bundle, verified and opened; or why there is nothing to install."""
        from nas_agent.bundle import open_entry, verify_entry
        from nas_agent.bundle.leaf import LEAF_FORMAT
        from nas_agent.bundle.sealed import MAX_SEALED_BYTES
        from nas_agent.local_copies import Material

        installed = self.state.installed_version(site.id, key_id(self.issuer_key))
        try:
            entry = index.entry(site.id)
            verify_entry(
                entry,
                agent_id=self.keys.agent_id,
                issuer_public_key=self.issuer_key,
                installed_version=installed,
            )
        except SiteNotInIndex:
            _log.info("site %s: nothing published for this agent yet", site.id)
            return EXIT_OK, "not published"
        except StaleVersion as exc:
            held = self.state.sites.get(site.id)
            if exc.up_to_date and held is not None and held.fingerprint != entry.cert_sha256:
                conflict = VersionConflict(
                    entry.version, held.fingerprint, entry.cert_sha256, site=site.id
                )
                return self._refused(site, conflict)
            if exc.up_to_date:
                return EXIT_OK, "up to date"
            return self._refused(site, exc)
        except BundleError as exc:
            return self._refused(site, exc)
        try:
            # The sealed object's own cap, not the source's 1 MiB: no more is read of a larger one.
            sealed = self.source.fetch(entry.object_key, max_bytes=MAX_SEALED_BYTES)
        except SourceTooLarge as exc:
            # What the signed entry names cannot be a bundle: refused, as open_entry would.
            return self._refused(
                site,
                MalformedSealedObject(
                    f"{entry.object_key}: {exc.reason}", site=site.id, version=entry.version
                ),
            )
        except SourceError as exc:
            self._record(exc, site.id)
            return EXIT_SOURCE, str(exc)
        assert isinstance(sealed, Fetched)  # asked without an ETag: never NotModified
        try:
            # Agent custody: the object holds no key; the agent's own keys for the site do.
            own = self._key_store().load(site.id).held() if entry.kind == LEAF_FORMAT else None
        except KeyFileError as exc:
            _log.error("site %s: %s", site.id, exc)
            self._record(exc, site.id)
            return EXIT_REFUSED, str(exc)
        try:
            opened = open_entry(
                entry,
                sealed.body,
                agent_id=self.keys.agent_id,
                agent_private_key=self.keys.box_key,
                issuer_public_key=self.issuer_key,
                installed_version=installed,
                hostnames=site.hostnames,
                now=self.now(),
                held_keys=own,
            )
        except BundleError as exc:
            return self._refused(site, exc)
        _log.info("site %s: version %d verified", site.id, entry.version)
        material = Material(
            opened.key_pem.encode("ascii"),
            opened.plaintext.leaf_pem.encode("ascii"),
            opened.plaintext.chain_pem.encode("ascii"),
        )
        return _Ready(site, entry, material, opened.held_key)

    def _install(self, ready: list[_Ready]) -> dict[str, tuple[int, str]]:
        from nas_agent.dsm.errors import DsmError

        outcomes: dict[str, tuple[int, str]] = {}
        try:
            with self._dsm().session() as install:
                self._dsm_login(None)
                for item in ready:
                    outcomes[item.site.id] = self._install_one(install, item)
        except (DsmError, TempAdminError) as exc:
            if not self._dsm_logged_in:
                self._dsm_login(exc)
            # DSM unreachable, the login refused, DSM stopped answering mid-way, or the
            # temporary administrator could not be made: every site not done yet keeps what
            # it has.
            for item in ready:
                if item.site.id not in outcomes:
                    self._record(exc, item.site.id)
                    outcomes[item.site.id] = (EXIT_DSM, str(exc))
        return outcomes

    def _install_one(
        self, install: Callable[[SiteConfig, Material], Installed], item: _Ready
    ) -> tuple[int, str]:
        from nas_agent.dsm.errors import DsmDuplicateDescription

        site, entry = item.site, item.entry
        _log.info("site %s: installing version %d into DSM", site.id, entry.version)
        try:
            done = install(site, item.material)
        except (InstallFailed, ServicesNotBound, DsmDuplicateDescription) as exc:
            # This site's own problem (DSM still answers): the other sites are installed.
            self._record(exc, site.id)
            return EXIT_ROLLED_BACK, str(exc)
        except OlderThanInstalled as exc:
            # DSM holds a newer certificate than this signed one: a rollback, also when the
            # state that would have refused it by version was lost.
            exc.version = entry.version
            return self._refused(site, exc)
        keys_unsaved: KeyFileError | None = None
        if item.held_key is not None:
            # The key it was installed with is now the site's current one; the one it replaced
            # is kept until the new certificate is confirmed served. Saved before the state: a
            # run stopped between the two writes finds the entry again next time, and DSM
            # holding it already, only records it.
            try:
                store = self._key_store()
                store.save(store.load(site.id).installed(item.held_key, confirmed=done.confirmed))
            except KeyFileError as exc:
                keys_unsaved = exc  # DSM holds the certificate all the same: the state says so
        self._save(
            self.state.with_installed(
                site.id,
                version=entry.version,
                fingerprint=entry.cert_sha256,
                not_after=entry.not_after,
                dsm_certificate_id=done.certificate_id,
                installed_at=self.now(),
                signed_by=key_id(self.issuer_key),
            ).with_dsm_version(done.dsm_version)
        )
        if keys_unsaved is not None:
            # The custody step promotes the key once the file can be written (its pending key
            # is the installed certificate's).
            _log.error("site %s: version %d installed; %s", site.id, entry.version, keys_unsaved)
            self._record(keys_unsaved, site.id)
            return EXIT_REFUSED, str(keys_unsaved)
        if done.copy_unsaved is not None:
            # Installed and recorded; the next install exports DSM's certificate as its backup.
            # An install not done as it should be (4), not exit 2: that stops the service loop
            # for good, and a full disk passes.
            self._record(done.copy_unsaved, site.id)
            return EXIT_ROLLED_BACK, f"version {entry.version} installed; {done.copy_unsaved}"
        if not done.imported:
            _log.info("site %s: version %d already held by DSM: recorded", site.id, entry.version)
            return EXIT_OK, "up to date"
        confirmed = "served by DSM" if done.confirmed else "imported (not DSM's default)"
        _log.info("site %s: version %d %s", site.id, entry.version, confirmed)
        return EXIT_OK, "installed"

    def _custody(self, index: Index) -> list[tuple[str | None, int, str]]:
        """Agent custody after the installs: the key requests when not read under this index
        yet, then a pending key with a posted CSR for each requested site configured here.
        Returns the problems, (site or None, exit code, message); each is recorded."""
        from nas_agent.custody.errors import KeyRequestError
        from nas_agent.custody.preparation import ensure_pending, read_key_requests
        from nas_agent.local_copies import LocalCopies
        from nas_agent.state import KeyRequestsHeld

        problems: list[tuple[str | None, int, str]] = []
        held = self.state.key_requests
        # Read once per index; then each pending CSR is posted again, as it may have been
        # deleted from the store, unless a certificate in the index may answer it.
        fresh = self.state.key_requests_read_under != index.issued_at
        if fresh:
            try:
                found = read_key_requests(
                    self.source,
                    agent_id=self.keys.agent_id,
                    issuer_public_key=self.issuer_key,
                    accepted_issued_at=held.issued_at if held else None,
                )
            except (KeyRequestError, SourceError) as exc:
                _log.error("key requests not read: %s", exc)
                self._record(exc, None)
                code = EXIT_SOURCE if isinstance(exc, SourceError) else EXIT_REFUSED
                problems.append((None, code, str(exc)))
            else:
                if found is not None:
                    held = KeyRequestsHeld(found.issued_at, found.sites)
                self._save(self.state.with_key_requests(held, index.issued_at))
        for request in held.sites if held else ():
            if request.site not in self.config.sites:
                _log.info("site %s is in agent custody but not in agent.conf", request.site)
                continue
            installed = self.state.installed(request.site)
            try:
                ensure_pending(
                    self._key_store(),
                    request,
                    agent=self.keys,
                    source=self.source,
                    now=self.now(),
                    installed_sha256=installed.fingerprint if installed else "",
                    installed_key=LocalCopies.beside(self.config.agent.state_file).public_key(
                        request.site
                    ),
                    repost=fresh and not self._leaf_waiting(index, request.site),
                )
            except (KeyRequestError, SourceError, KeyFileError) as exc:
                _log.error("site %s: %s", request.site, exc)
                self._record(exc, request.site)
                code = EXIT_REFUSED if isinstance(exc, KeyFileError) else EXIT_SOURCE
                problems.append((request.site, code, str(exc)))
        return problems

    def _leaf_waiting(self, index: Index, site: str) -> bool:
        """Whether the index holds a certificate of the site in agent custody other than the one
        installed: it may answer the pending CSR (its install failed this run)."""
        from nas_agent.bundle.leaf import LEAF_FORMAT

        installed = self.state.installed(site)
        return any(
            entry.site == site
            and entry.kind == LEAF_FORMAT
            and (installed is None or entry.cert_sha256 != installed.fingerprint)
            for entry in index.entries
        )

    def csr_pending(self) -> dict[str, int | None]:
        """For each site in agent custody: the sequence of its pending CSR (None: none)."""
        held = self.state.key_requests
        if held is None:
            return {}
        pending: dict[str, int | None] = {}
        for request in held.sites:
            try:
                keys = self._key_store().load(request.site)
            except KeyFileError:
                keys = None  # recorded where it was met; the report names no sequence
            pending[request.site] = keys.pending.sequence if keys and keys.pending else None
        return pending

    def _key_store(self) -> KeyStore:
        from nas_agent.custody.key_store import KeyStore

        return KeyStore(os.path.dirname(os.path.abspath(self.config.agent.state_file)))

    def _check_dsm(self, result: CycleResult) -> CycleResult:
        """Logs in and out once when no install did and the credential check is due, so a
        password DSM no longer accepts is reported before a certificate depends on it."""
        if self._dsm_logged_in is not None:
            return result
        last = self.state.dsm_check
        if not check_due(last, credentials_basis(self.config), self.now()):
            if last is not None and last.error is not None:
                _log.warning(
                    "DSM refused the agent's login at %s (%s); checked again from %s, or at the"
                    " next run after agent.conf or the DSM password or device file changes",
                    format_timestamp(last.at),
                    last.error.code,
                    format_timestamp(next_check(last)),
                )
            return result
        _log.info("checking that DSM accepts the agent's login (daily, and after changes)")
        from nas_agent.dsm.errors import DsmError

        try:
            with self._dsm().session():
                self._dsm_login(None)
        except (DsmError, TempAdminError) as exc:
            # The login refused or DSM unreachable; or, logged in, the temporary account could
            # not be deleted: reported either way.
            if not self._dsm_logged_in:
                self._dsm_login(exc)
            _log.error("DSM login check: %s", exc)
            self._record(exc, None)
            codes = [code for code in (result.exit_code, EXIT_DSM) if code != EXIT_OK]
            return replace(
                result,
                exit_code=min(codes, key=_SEVERITY.index),
                failures=(*result.failures, f"DSM login check: {exc}"),
            )
        return result

    def _dsm_login(self, error: AgentError | None) -> None:
        """Records this run's DSM login, accepted (`error` None) or not: the credential check."""
        self._dsm_logged_in = error is None
        basis = credentials_basis(self.config)  # after the login: it may clear the device file
        if error is None:
            self._save(self.state.with_dsm_check(self.now(), basis))
        else:
            self._save(
                self.state.with_dsm_check(
                    self.now(),
                    basis,
                    code=error.code,
                    message=str(error),
                    transient=error.transient,
                )
            )

    def _dsm(self) -> DsmInstaller:
        if self._installer is None:
            from nas_agent.install import DsmInstaller
            from nas_agent.local_copies import LocalCopies

            copies = LocalCopies.beside(self.config.agent.state_file)
            dsm = self.config.dsm
            password = None if dsm.temp_admin else dsm_password(dsm, self.environ)
            self._installer = DsmInstaller(
                self.dsm_client(), dsm, password, copies, temp_admin=self.temp_admin, now=self.now
            )
        return self._installer

    def _refused(self, site: SiteConfig, exc: BundleError) -> tuple[int, str]:
        _log.error("site %s: bundle refused: %s", site.id, exc)
        self._record(exc, site.id)
        return EXIT_REFUSED, f"bundle refused: {exc}"

    def _fail(self, code: int, exc: AgentError) -> CycleResult:
        _log.error("%s", exc)
        self._record(exc, None)
        return CycleResult(code, failures=(str(exc),))

    def _record(self, exc: AgentError, site: str | None) -> None:
        self._save(self.state.with_error(exc.code, str(exc), self.now(), site=site))

    def _save(self, state: AgentState) -> None:
        self.state = state
        save_state(self.config.agent.state_file, state)


def _dsm_client(config: AgentConfig) -> DsmClient:
    from nas_agent.dsm.client import DsmClient

    return DsmClient(config.dsm.url, verify=config.dsm.verify, timeout=config.dsm.timeout)


def _report(
    keys: AgentKeys,
    source: Source,
    state: AgentState,
    now: datetime,
    poll_interval: float,
    csr_pending: dict[str, int | None],
) -> None:
    """Writes the signed status report; a source that cannot take it is not a failure."""
    body = signed_status(
        state,
        agent_id=keys.agent_id,
        signing_key=keys.signing_key,
        now=now,
        poll_interval=poll_interval,
        csr_pending=csr_pending,
    )
    try:
        if source.put_status(body):
            _log.info("status report written")
    except SourceError as exc:
        _log.warning("status report not written: %s", exc)

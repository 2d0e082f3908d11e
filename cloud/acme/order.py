"""Issuing one site's certificate: fresh key, order, the site's challenge for every name,
finalize, checks.

The challenge is an `Authorizer`: dns-01's (`Dns01Authorizer`, here) removes its TXT values as
soon as the authorizations are settled, and on every failure path; a crash between adding and
removing is covered by the journal the next run sweeps. dns-persist-01's writes nothing
(`cloud.acme.persist.PersistAuthorizer`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from acme import messages
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    load_pem_private_key,
)

from cloud.acme.ari import ari_cert_id
from cloud.acme.certificate_keys import (
    KeyType,
    generate_key,
    key_matches_certificate,
    key_type_of,
    make_csr,
    pkcs8_pem,
)
from cloud.acme.chains import Chain, select_chain
from cloud.acme.client import AcmeClient
from cloud.config import SiteConfig
from cloud.dns01.solver import Challenge, Dns01Solver
from cloud.errors import AcmeError, CertdropError, IssuanceError, KeptKeyMismatch, OrderGone
from nas_agent.bundle.checks import spki_der

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedCertificate:
    site: str
    names: tuple[str, ...]
    key_type: KeyType
    key_pem: bytes  # PKCS#8; lives in memory only, sealed before it is stored anywhere
    cert_pem: str
    chain_pem: str
    not_before: datetime
    not_after: datetime
    serial: int
    fingerprint_sha256: str
    issuer_cn: str | None
    order_url: str
    profile: str | None = None
    ari_id: str | None = None  # RFC 9773 CertID, for the renewal's `replaces`

    @property
    def fullchain_pem(self) -> str:
        return self.cert_pem + self.chain_pem

    def __repr__(self) -> str:  # keeps the key out of logs and tracebacks
        return f"IssuedCertificate(site={self.site!r}, serial={self.serial:x})"


class Steps:
    """Logs each step of a run with its duration, so a terminal shows progress."""

    def __init__(self, site: str, clock: Callable[[], float] = time.monotonic):
        self.site = site
        self.clock = clock
        self.started = clock()

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        start = self.clock()
        yield
        ms = round((self.clock() - start) * 1000)
        log.info("%s", what, extra={"site": self.site, "step": what, "duration_ms": ms})

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started


def issue(
    site: SiteConfig,
    acme: AcmeClient,
    authorizer: Authorizer,
    *,
    order_timeout: float,
    preferred_chain: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    replaces: str | None = None,
    resume_order: str | None = None,
    on_order: Callable[[str], None] | None = None,
    on_replaces_refused: Callable[[AcmeError], None] | None = None,
    order_key: bytes | None = None,
    on_finalizing: Callable[[str, bytes], None] | None = None,
    resume_only: bool = False,
    on_ordering: Callable[[], None] | None = None,
) -> IssuedCertificate:
    """Issues `site` now. `replaces` names the certificate this renews (ARI CertID);
    `resume_order` is the URL of an order an interrupted run placed, finished instead of placing
    a new one when the CA still has it pending or ready; `on_order` is told the order's URL
    before any challenge is touched, so a crash after it can be resumed. When the CA answers
    that the certificate `replaces` names already has a replacement, the order is placed once
    more without `replaces`, after telling `on_replaces_refused`. `on_finalizing` is given the
    order's URL and the key (PKCS#8 PEM) just before the CSR is sent, and `order_key` is that
    key back for `resume_order`: an order a dead run finalized is then finished, not lost.
    With `resume_only`, an order that cannot be resumed raises OrderGone instead of a new one
    being placed (the site was not due; only the interrupted order was to be finished)."""
    steps = Steps(site.id, clock)
    authorizer.prepare()
    key: CertificateIssuerPrivateKeyTypes
    uses_kept_key = resume_order is not None and order_key is not None
    with steps.step(f"generated {site.key_type.value} key and CSR"):
        if uses_kept_key and order_key is not None:
            key_pem = order_key  # the key the interrupted run finalized with
            kept = load_pem_private_key(key_pem, password=None)
            if not isinstance(kept, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
                raise IssuanceError(f"site {site.id}: the kept order key is not EC or RSA")
            key = kept
        else:
            key = generate_key(site.key_type)
            key_pem = pkcs8_pem(key)
        csr = make_csr(key_pem, site.names)
    order = None
    if resume_order is not None:
        with steps.step("order of an interrupted run looked up"):
            order = acme.resume_order(resume_order, csr, finalized_ok=order_key is not None)
        if order is not None:
            log.info("resuming the interrupted run's order", extra={"site": site.id})
    if order is None and resume_only:
        raise OrderGone(resume_order or "")
    if order is None:
        if on_ordering is not None:
            on_ordering()
        with steps.step("order placed"):
            order = _new_order(acme, csr, site, replaces, on_replaces_refused, on_order)
    elif on_order is not None:
        on_order(order.uri)
    deadline = clock() + order_timeout
    finalized = order.body.status in (messages.STATUS_PROCESSING, messages.STATUS_VALID)
    if not finalized and uses_kept_key:
        # The kept key is for an order finalized with it, whose certificate it must match. An
        # order not finalized yet gets a fresh key: the kept one comes from the store, where
        # anyone able to write it could have sealed a key of their own (sealing needs only the
        # escrow public key) for the CA to certify.
        key = generate_key(site.key_type)
        key_pem = pkcs8_pem(key)
        csr = make_csr(key_pem, site.names)
        order = order.update(csr_pem=csr)
    if not finalized:
        order = authorizer.authorize(acme, order, deadline, steps)
        if on_finalizing is not None:
            on_finalizing(order.uri, key_pem)
    with steps.step("order finalized, certificate downloaded"):
        order = acme.finalize(order, deadline)
    chain = select_chain(order.fullchain_pem, order.alternative_fullchains_pem, preferred_chain)
    if not key_matches_certificate(key, chain.leaf):
        if uses_kept_key:
            raise KeptKeyMismatch(site.id, order.uri)
        raise IssuanceError(f"site {site.id}: the certificate is not for the key we generated")
    result = _checked(site, key_pem, chain, order.uri)
    log.info(
        "issued",
        extra={"site": site.id, "duration_ms": round(steps.elapsed * 1000), "order_url": order.uri},
    )
    return result


def issue_for_csr(
    site: SiteConfig,
    acme: AcmeClient,
    authorizer: Authorizer,
    csr_pem: bytes,
    *,
    order_timeout: float,
    preferred_chain: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    replaces: str | None = None,
    resume_order: str | None = None,
    on_order: Callable[[str], None] | None = None,
    on_replaces_refused: Callable[[AcmeError], None] | None = None,
    on_ordering: Callable[[], None] | None = None,
) -> IssuedCertificate:
    """Issues `site` for a CSR whose key is somewhere else (agent custody: on the NAS), as
    `issue` does; the result's key_pem is empty. An interrupted order is resumed in any state
    (whoever holds the key can use what it issued); a certificate for another key than the
    CSR's — an order of another CSR — is refused."""
    steps = Steps(site.id, clock)
    authorizer.prepare()
    public_key = x509.load_pem_x509_csr(csr_pem).public_key()
    order = None
    if resume_order is not None:
        with steps.step("order of an interrupted run looked up"):
            order = acme.resume_order(resume_order, csr_pem, finalized_ok=True)
    if order is None:
        if on_ordering is not None:
            on_ordering()
        with steps.step("order placed"):
            order = _new_order(acme, csr_pem, site, replaces, on_replaces_refused, on_order)
    elif on_order is not None:
        on_order(order.uri)
    deadline = clock() + order_timeout
    if order.body.status not in (messages.STATUS_PROCESSING, messages.STATUS_VALID):
        order = authorizer.authorize(acme, order, deadline, steps)
    with steps.step("order finalized, certificate downloaded"):
        order = acme.finalize(order, deadline)
    chain = select_chain(order.fullchain_pem, order.alternative_fullchains_pem, preferred_chain)
    if spki_der(chain.leaf.public_key()) != spki_der(public_key):
        raise IssuanceError(f"site {site.id}: the certificate is not for the CSR's key")
    result = _checked(site, b"", chain, order.uri)
    log.info(
        "issued",
        extra={"site": site.id, "duration_ms": round(steps.elapsed * 1000), "order_url": order.uri},
    )
    return result


# What a CA answers an order whose `replaces` it will not take; the order is placed once more
# without it.
_REPLACES_REFUSED = frozenset({"alreadyReplaced", "malformed", "serverInternal"})


def _new_order(
    acme: AcmeClient,
    csr: bytes,
    site: SiteConfig,
    replaces: str | None,
    on_replaces_refused: Callable[[AcmeError], None] | None,
    on_order: Callable[[str], None] | None,
) -> messages.OrderResource:
    """A new order; without `replaces` once, when the CA says the certificate already has a
    replacement (an order nobody here can finish: it is not the one this run could resume), or
    when it refuses the order as malformed or fails on it and holds no order for these names:
    `replaces` is advice to the CA, and a CA that cannot take it must not keep a certificate from
    being renewed (Pebble, for one, cannot find a certificate whose DER serial has a leading zero
    byte). A CA keeping no order list (Let's Encrypt) cannot be asked: there a failure after it
    stored the order leaves that one unfinished, the same window as a run killed right after
    sending it."""
    try:
        return acme.new_order(csr, site.profile, replaces, on_placed=on_order)
    except AcmeError as exc:
        if replaces is None or exc.problem not in _REPLACES_REFUSED:
            raise
        if exc.problem == "serverInternal" and acme.find_order(tuple(site.names)) is not None:
            # The CA stored an order for these names and lost its answer (or one is left from
            # an earlier run): no second one. The next run finds it (the journalled attempt)
            # and finishes it.
            raise
        if exc.problem == "alreadyReplaced":
            log.warning(
                "the CA says certificate %s already has a replacement order: ordering without "
                "`replaces` (not exempt from rate limits)",
                replaces,
                extra={"site": site.id},
            )
        else:
            log.warning(
                "the CA refused the order naming the certificate it replaces (%s: %s): ordering"
                " without `replaces` (not exempt from rate limits)",
                exc.problem,
                exc.detail,
                extra={"site": site.id},
            )
        if on_replaces_refused is not None:
            on_replaces_refused(exc)  # the order without it counts against the CA's limits
    return acme.new_order(csr, site.profile, None, on_placed=on_order)


class Authorizer(Protocol):
    """Gets an order's pending authorizations valid with one challenge type."""

    def prepare(self) -> None:
        """Before anything is ordered: tidies what an interrupted earlier run left."""

    def authorize(
        self, acme: AcmeClient, order: messages.OrderResource, deadline: float, steps: Steps
    ) -> messages.OrderResource:
        """Answers every pending authorization; returns the order once all are valid."""


class Dns01Authorizer:
    """dns-01: fresh TXT values placed through the site's provider, journalled, waited for at
    every authoritative nameserver, answered, and removed (also after any failure)."""

    def __init__(self, solver: Dns01Solver):
        self.solver = solver

    def prepare(self) -> None:
        self.solver.sweep()  # what stays is journalled and recorded, never a reason to fail

    def authorize(
        self, acme: AcmeClient, order: messages.OrderResource, deadline: float, steps: Steps
    ) -> messages.OrderResource:
        solver = self.solver
        pending = acme.dns01_challenges(order)
        challenges = [Challenge(domain, acme.validation(challb)) for domain, challb in pending]
        records: tuple = ()
        try:
            if challenges:
                with steps.step(f"located {len(challenges)} challenge record(s)"):
                    records = solver.present(challenges)
                with steps.step(f"added {len(records)} TXT value(s)"):
                    solver.add(records)
                with steps.step("TXT values served by every authoritative nameserver"):
                    solver.wait(records)
                with steps.step("challenges answered"):
                    for _, challb in pending:
                        acme.answer(challb)
            with steps.step("authorizations valid"):
                return acme.wait_for_authorizations(order, deadline)
        finally:
            if records:
                _cleanup(solver, records, steps)


def _cleanup(solver: Dns01Solver, records: tuple, steps: Steps) -> None:
    """Removes the values; a failure here, of any kind, must not hide the error that got us
    here (what is not removed stays journalled for the next run)."""
    try:
        with steps.step(f"removed {len(records)} TXT value(s)"):
            solver.cleanup(records)
    except CertdropError as exc:
        log.error("cleanup failed: %s", exc, extra={"site": steps.site})
    except Exception:
        log.exception("cleanup failed: unexpected error", extra={"site": steps.site})


def _checked(site: SiteConfig, key_pem: bytes, chain: Chain, order_url: str) -> IssuedCertificate:
    """Refuses a certificate that is not what was ordered (its key is the caller's to check)."""
    leaf = chain.leaf
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise IssuanceError(f"site {site.id}: the certificate has no SAN extension") from exc
    names = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    if names != set(site.names):
        raise IssuanceError(
            f"site {site.id}: the certificate names {sorted(names)} differ from the order "
            f"{sorted(site.names)}"
        )
    if chain.intermediates:
        try:
            leaf.verify_directly_issued_by(chain.intermediates[0])
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise IssuanceError(f"site {site.id}: the chain does not sign the leaf") from exc
    return IssuedCertificate(
        site=site.id,
        names=site.names,
        key_type=key_type_of(leaf.public_key()) or site.key_type,
        key_pem=key_pem,
        cert_pem=chain.leaf_pem,
        chain_pem=chain.chain_pem,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        serial=leaf.serial_number,
        fingerprint_sha256=hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest(),
        issuer_cn=chain.top_issuer_cn,
        order_url=order_url,
        profile=site.profile,
        ari_id=ari_cert_id(leaf),
    )

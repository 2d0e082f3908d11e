# Over 300 lines: the account, each order call and the retry/poll around it are one session.
"""certdrop's session with one ACME CA, over certbot's `acme` library.

Adds what the library leaves to its callers: the account key kept and reused, External Account
Binding, a bounded retry around badNonce and transient server errors (the library retries a bad
nonce once), polling with a short backoff instead of its fixed one-second sleeps, and problem
documents turned into `AcmeError`s carrying the problem type, the identifier and Retry-After.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import josepy as jose
from acme import challenges, client, crypto_util, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.acme.certificate_keys import pkcs8_pem
from cloud.acme.problems import (
    RETRY_PROBLEMS,
    RetryAfterNetwork,
    failures,
    translate,
    utcnow,
)
from cloud.config import CaConfig
from cloud.errors import AcmeError, KeyExists, ValidationFailed
from cloud.keys.store import KeyStore
from cloud.secrets import resolve

log = logging.getLogger(__name__)
T = TypeVar("T")

USER_AGENT = "certdrop/0.1"


class _ReplacingNewOrder(messages.NewOrder):
    """newOrder with RFC 9773's `replaces`, which the library's message lacks."""

    replaces: str | None = jose.field("replaces", omitempty=True)


class AcmeClient:
    """One CA, one account. Not shared between threads: make one per concurrent issuance."""

    def __init__(
        self,
        ca: CaConfig,
        keys: KeyStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 6,
        nonce_attempts: int = 12,
        first_interval: float = 0.05,
        max_interval: float = 2.0,
    ):
        self.ca = ca
        self.keys = keys
        self.clock = clock
        self.sleep = sleep
        self.attempts = attempts
        self.nonce_attempts = nonce_attempts
        self.first_interval = first_interval
        self.max_interval = max_interval
        self._client: client.ClientV2 | None = None
        self._net: RetryAfterNetwork | None = None

    # --- account -------------------------------------------------------------------------

    def connect(self) -> None:
        """Fetches the directory and loads the account, registering it on first use."""
        key_name = "acme-account-" + hashlib.sha256(self.ca.directory.encode()).hexdigest()[:16]
        stored = self.keys.load(key_name)
        if stored is None:
            self._register(key_name)
            return
        record = json.loads(stored)
        key = serialization.load_pem_private_key(record["key"].encode(), password=None)
        self._open(jose.JWKEC(key=key))
        self.net.account = messages.RegistrationResource(
            uri=record["uri"], body=messages.Registration()
        )
        log.debug("ACME account loaded", extra={"account": record["uri"]})

    def _open(self, jwk: jose.JWK) -> None:
        verify: bool | str = str(self.ca.ca_bundle) if self.ca.ca_bundle else True
        self._net = RetryAfterNetwork(
            jwk,
            alg=jose.ES256,
            # acme types it bool; it goes to requests' `verify`, which also takes a CA file.
            verify_ssl=verify,  # type: ignore[arg-type]
            user_agent=USER_AGENT,
        )
        directory = self._call(
            "fetch directory", client.ClientV2.get_directory, self.ca.directory, self._net
        )
        self._client = client.ClientV2(directory, self._net)

    def _register(self, key_name: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        jwk = jose.JWKEC(key=key)
        self._open(jwk)
        eab = None
        if self.ca.eab is not None:
            eab = messages.ExternalAccountBinding.from_data(
                account_public_key=jwk.public_key(),
                kid=self.ca.eab.kid,
                hmac_key=resolve(self.ca.eab.hmac_key),
                directory=self.acme.directory,
                hmac_alg=self.ca.eab.alg,
            )
        elif self.acme.external_account_required():
            raise AcmeError(
                "externalAccountRequired",
                "the CA requires External Account Binding: set ca.eab_kid and ca.eab_hmac_key",
            )
        registration = messages.NewRegistration.from_data(
            contact=self.ca.contact, terms_of_service_agreed=True, external_account_binding=eab
        )
        try:
            regr = self._call("register account", self.acme.new_account, registration)
        except AcmeError as exc:
            if exc.problem != "conflict" or exc.location is None:
                raise
            # The key is already registered (a previous run died before saving it).
            regr = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
            self.net.account = regr
        record = {"directory": self.ca.directory, "uri": regr.uri, "key": pkcs8_pem(key).decode()}
        try:
            self.keys.create(key_name, json.dumps(record).encode())
        except KeyExists:
            # Another run registered at the same moment; use the account it saved.
            self.connect()
            return
        log.info("ACME account registered", extra={"account": regr.uri})

    @property
    def acme(self) -> client.ClientV2:
        if self._client is None:
            raise RuntimeError("AcmeClient.connect() was not called")
        return self._client

    @property
    def net(self) -> RetryAfterNetwork:
        assert self._net is not None
        return self._net

    # --- orders ----------------------------------------------------------------------------

    @property
    def renewal_info_url(self) -> str | None:
        """The directory's ARI endpoint, when the CA offers one."""
        try:
            return self.acme.directory["renewalInfo"]
        except KeyError:
            return None

    def new_order(
        self, csr_pem: bytes, profile: str | None, replaces: str | None = None
    ) -> messages.OrderResource:
        """Places an order for the CSR's names. `replaces` (an ARI CertID) marks it as the
        renewal of that certificate; it is sent only to a CA that offers ARI."""
        if replaces is None or self.renewal_info_url is None:
            return self._call("new order", self.acme.new_order, csr_pem, profile)
        return self._call("new order", self._new_order_replacing, csr_pem, profile, replaces)

    def _new_order_replacing(
        self, csr_pem: bytes, profile: str | None, replaces: str
    ) -> messages.OrderResource:
        # The library's new_order cannot send `replaces`; this is its body with our message.
        csr = x509.load_pem_x509_csr(csr_pem)
        names, _ = crypto_util.get_identifiers_from_x509(csr.subject, csr.extensions)
        order = _ReplacingNewOrder(
            identifiers=[messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=n) for n in names],
            profile=profile,
            replaces=replaces,
        )
        response = self.acme._post(self.acme.directory["newOrder"], order)
        body = messages.Order.from_json(response.json())
        authorizations = [
            self.acme._authzr_from_response(self.acme._post_as_get(url), uri=url)
            for url in body.authorizations
        ]
        return messages.OrderResource(
            body=body,
            uri=response.headers.get("Location"),
            authorizations=authorizations,
            csr_pem=csr_pem,
        )

    def resume_order(self, order_url: str, csr_pem: bytes) -> messages.OrderResource | None:
        """The order at `order_url` with its authorizations, when it can still be finished with
        a new CSR for the same names (pending or ready); None when it is gone, invalid, or
        already issued — a certificate whose key died with the run that ordered it."""
        try:
            response = self._call("fetch order", self.acme._post_as_get, order_url)
        except AcmeError as exc:
            if exc.transient:
                raise
            return None  # unknown to the CA (expired, deleted): place a new one
        body = messages.Order.from_json(response.json())
        if body.status not in (messages.STATUS_PENDING, messages.STATUS_READY):
            return None
        authorizations = [
            self._call("fetch authorization", self._authorization, url)
            for url in body.authorizations
        ]
        return messages.OrderResource(
            body=body, uri=order_url, authorizations=authorizations, csr_pem=csr_pem
        )

    def _authorization(self, url: str) -> messages.AuthorizationResource:
        return self.acme._authzr_from_response(self.acme._post_as_get(url), uri=url)

    def dns01_challenges(
        self, orderr: messages.OrderResource
    ) -> list[tuple[str, messages.ChallengeBody]]:
        """(domain, dns-01 challenge) for each authorization still pending; valid ones (reused
        by the CA) need nothing."""
        result = []
        for authzr in orderr.authorizations:
            if authzr.body.status == messages.STATUS_VALID:
                continue
            domain = authzr.body.identifier.value
            for challb in authzr.body.challenges:
                if isinstance(challb.chall, challenges.DNS01):
                    result.append((domain, challb))
                    break
            else:
                raise AcmeError(
                    "unsupportedChallenge", "the CA offers no dns-01 challenge", identifier=domain
                )
        return result

    def validation(self, challb: messages.ChallengeBody) -> str:
        """The TXT value that answers this challenge."""
        return challb.chall.validation(self.net.key)

    def answer(self, challb: messages.ChallengeBody) -> None:
        response = challb.chall.response(self.net.key)
        self._call("answer challenge", self.acme.answer_challenge, challb, response)

    def wait_for_authorizations(
        self, orderr: messages.OrderResource, deadline: float
    ) -> messages.OrderResource:
        pending = list(orderr.authorizations)
        done: list[messages.AuthorizationResource] = []
        interval = self.first_interval
        while True:
            still = []
            for authzr in pending:
                updated, _ = self._call("poll authorization", self.acme.poll, authzr)
                if updated.body.status == messages.STATUS_VALID:
                    done.append(updated)
                elif updated.body.status == messages.STATUS_INVALID:
                    raise ValidationFailed(failures(updated))
                else:
                    still.append(updated)
            pending = still
            if not pending:
                return orderr.update(authorizations=done)
            interval = self._pause(interval, deadline, "authorizations still pending")

    def finalize(self, orderr: messages.OrderResource, deadline: float) -> messages.OrderResource:
        """Sends the CSR and polls until the certificate is there; returns the order with its
        full chain and the alternative chains."""
        try:
            orderr = self._call("finalize order", self.acme.begin_finalization, orderr)
        except AcmeError as exc:
            # A lost response to an earlier finalize makes the retry fail this way; the order
            # itself then tells us where it stands.
            if exc.problem not in ("orderNotReady", "malformed"):
                raise
        interval = self.first_interval
        while True:
            response = self._call("poll order", self.acme._post_as_get, orderr.uri)
            body = messages.Order.from_json(response.json())
            if body.status == messages.STATUS_INVALID:
                error = body.error
                raise AcmeError(
                    (error.code if error else None) or "orderInvalid",
                    (error.detail if error else None) or "the CA marked the order invalid",
                )
            if body.status == messages.STATUS_VALID and body.certificate:
                cert = self._call("download certificate", self.acme._post_as_get, body.certificate)
                links = self.acme._get_links(cert, "alternate")
                alternates = [
                    self._call("download alternate chain", self.acme._post_as_get, url).text
                    for url in links
                ]
                return orderr.update(
                    body=body, fullchain_pem=cert.text, alternative_fullchains_pem=alternates
                )
            if body.status == messages.STATUS_READY:
                self._call("finalize order", self.acme.begin_finalization, orderr)
            interval = self._pause(interval, deadline, f"order {body.status}")

    # --- plumbing --------------------------------------------------------------------------

    def _pause(self, interval: float, deadline: float, what: str) -> float:
        """Sleeps before the next poll (never past the deadline, honouring Retry-After) and
        returns the next interval."""
        now = self.clock()
        if now >= deadline:
            raise AcmeError("timeout", f"{what} at the deadline", transient=True)
        wait = interval
        retry_after = self.net.last_retry_after
        if retry_after is not None:
            wait = max(wait, (retry_after - utcnow()).total_seconds())
        self.sleep(max(0.0, min(wait, deadline - now)))
        return min(interval * 2, self.max_interval)

    def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Calls the library, retrying bad nonces and transient server errors a bounded number
        of times, and translating every failure into an AcmeError.

        Server errors get `attempts` tries with backoff. A bad nonce needs only a fresh nonce, no
        pause, and CAs reject good nonces at random (Pebble 5% by default), so it gets its own,
        larger budget: with the library's one retry inside, each try fails with p², and twelve
        tries make a lost call vanishingly rare even at p = 0.5.
        """
        delay = self.first_interval
        server_errors = nonce_errors = 0
        while True:
            try:
                return fn(*args)
            except Exception as exc:  # translated right here, once
                error = translate(exc, self._net.last_retry_after if self._net else None)
                if error is None:
                    raise
                if error.problem == "badNonce":
                    nonce_errors += 1
                    if nonce_errors >= self.nonce_attempts:
                        raise error from exc
                elif error.problem in RETRY_PROBLEMS:
                    server_errors += 1
                    if server_errors >= self.attempts:
                        raise error from exc
                    self.sleep(delay)
                    delay = min(delay * 2, self.max_interval)
                else:
                    raise error from exc
                log.debug("retrying %s after %s", what, error.problem)

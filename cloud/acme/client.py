# Over 300 lines: the account, each order call and the retry/poll around it are one session.
"""certdrop's session with one ACME CA, over certbot's `acme` library.

Adds what the library leaves to its callers: the account key kept and reused (in the key store
or in AWS KMS, `account_key`), its rollover (`key_change`), External Account Binding, a bounded
retry around badNonce and transient server errors (the library retries a bad nonce once),
polling with a short backoff instead of its fixed one-second sleeps, and problem documents
turned into `AcmeError`s carrying the problem type, the identifier and Retry-After.
Orders name a profile only one the CA's directory lists, and may say what they replace (ARI);
every request, the renewal-info GET included, carries certdrop's User-Agent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import josepy as jose
import requests
from acme import challenges, client, crypto_util, messages
from cryptography import x509

from cloud.acme.account_key import AccountKey, AccountRecord, new_key, record_name
from cloud.acme.ari import SuggestedWindow, fetch_window
from cloud.acme.http_environment import EnvironmentOnce, ca_verify
from cloud.acme.problems import (
    RETRY_PROBLEMS,
    RetryAfterNetwork,
    directory_failure,
    failures,
    problem_name,
    translate,
    utcnow,
)
from cloud.config import LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING, CaConfig
from cloud.errors import (
    AccountKeyMismatch,
    AcmeError,
    DirectoryUnavailable,
    KeyExists,
    ProfileUnknown,
    ValidationFailed,
)
from cloud.keys.store import KeyStore
from cloud.secrets import resolve

log = logging.getLogger(__name__)
T = TypeVar("T")

USER_AGENT = "certdrop/0.1"
# What every ACME directory lists; a JSON document without them is something else.
_DIRECTORY_RESOURCES = ("newNonce", "newAccount", "newOrder")


class _ReplacingNewOrder(messages.NewOrder):
    """newOrder with RFC 9773's `replaces`, which the library's message lacks."""

    replaces: str | None = jose.field("replaces", omitempty=True)


class AcmeClient:
    """One CA, one account. Not shared between threads: make one per concurrent issuance.

    With `staging`, `ca.directory` is the CA's staging directory (a dry run's): its account is
    kept under a name of its own, and messages name `ca.staging_directory`.
    """

    def __init__(
        self,
        ca: CaConfig,
        keys: KeyStore,
        *,
        staging: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 6,
        nonce_attempts: int = 12,
        first_interval: float = 0.01,
        max_interval: float = 2.0,
        retry_interval: float = 0.05,
    ):
        self.ca = ca
        self.keys = keys
        self.staging = staging
        self.clock = clock
        self.sleep = sleep
        self.attempts = attempts
        self.nonce_attempts = nonce_attempts
        self.first_interval = first_interval  # polls: a CA that validates fast is seen at once
        self.retry_interval = retry_interval  # a server error's first pause: a failing CA rests
        self.max_interval = max_interval
        self._client: client.ClientV2 | None = None
        self._net: RetryAfterNetwork | None = None
        self._record: AccountRecord | None = None

    # --- account -------------------------------------------------------------------------

    @property
    def record_name(self) -> str:
        """The key store's name for this CA's account record."""
        return record_name(self.ca.directory, staging=self.staging)

    def connect(self, *, any_key: bool = False) -> None:
        """Fetches the directory and loads the account, registering it on first use with the
        key `ca.account_key` names, and finishing a key rollover an earlier run left under way.
        An account whose key is not the configured one is refused (AccountKeyMismatch) unless
        `any_key` (a rollover, which is about to change it)."""
        stored = self.keys.load(self.record_name)
        if stored is None:
            self._register(self.record_name)
            return
        record = AccountRecord.loads(stored, self.record_name)
        if record.next is None and not any_key:
            self._check_key(record)
        self._open(record.key.jwk)
        self.net.account = messages.RegistrationResource(
            uri=record.uri, body=messages.Registration()
        )
        self._record = record
        if record.next is not None:
            # Imported here: only a rollover under way needs it.
            from cloud.acme import key_change

            self._record = record = key_change.settle(self, record)
            if not any_key:
                self._check_key(record)
        log.debug("ACME account loaded", extra={"account": record.uri})

    def _check_key(self, record: AccountRecord) -> None:
        if record.key.ref != self.ca.account_key:
            raise AccountKeyMismatch(str(self.ca.account_key), str(record.key.ref), record.uri)

    @property
    def record(self) -> AccountRecord:
        """The account as the key store holds it: its URL and the key it signs with."""
        assert self._record is not None, "AcmeClient.connect() was not called"
        return self._record

    def save(self, record: AccountRecord) -> None:
        """Replaces the account's record (a rollover's steps); later requests are signed with
        `record.key`."""
        self.keys.replace(self.record_name, record.dumps())
        self._record = record
        self.sign_with(record.key)

    def sign_with(self, key: AccountKey) -> None:
        """Signs the following requests with `key` (the record is left as it is)."""
        self.net.key = key.jwk

    def fetch_account(self) -> dict[str, Any]:
        """The account object at the CA (POST-as-GET on its URL), signed with the current key:
        also the proof that the CA takes that key for this account."""
        response = self._call("fetch account", self.acme._post_as_get, self.account_uri)
        return response.json()

    def _open(self, jwk: jose.JWK) -> None:
        self._net = RetryAfterNetwork(jwk, alg=jose.ES256, user_agent=USER_AGENT)
        # acme types it bool; it goes to requests' `verify`, which also takes a CA file.
        self._net.verify_ssl = ca_verify(  # type: ignore[assignment]
            str(self.ca.ca_bundle) if self.ca.ca_bundle else True
        )
        self._net.session.close()
        self._net.session = EnvironmentOnce()  # acme's own is a plain Session: the same adapters
        self._net.session.verify = self._net.verify_ssl
        self._net.session.headers["User-Agent"] = USER_AGENT
        self._client = client.ClientV2(self._directory(self._net), self._net)

    def _directory(self, net: RetryAfterNetwork) -> messages.Directory:
        """The CA's directory; DirectoryUnavailable, naming the URL and the setting that gave
        it, when the URL serves none."""
        url = self.ca.directory
        setting = "ca.staging_directory" if self.staging else "ca.directory"
        example = LETSENCRYPT_STAGING if self.staging else LETSENCRYPT_PRODUCTION
        fix = f"set {setting} to the CA's ACME directory URL, e.g. {example}"
        try:
            # Any content type: what is not JSON is told below, not retried as a server error.
            response = self._call("fetch directory", net.get, url, None)
        except AcmeError as exc:
            if exc.transient:
                fix = f"check {setting}, or try again when the CA is back"
            raise DirectoryUnavailable(
                url, setting, directory_failure(exc), fix, transient=exc.transient
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not all(r in body for r in _DIRECTORY_RESOURCES):
            kind = response.headers.get("Content-Type") or "no content type"
            cause = f"answered HTTP {response.status_code} ({kind}), not an ACME directory"
            raise DirectoryUnavailable(url, setting, cause, fix, transient=False)
        try:
            return messages.Directory.from_json(body)
        except jose.DeserializationError as exc:
            cause = f"answered a directory whose meta does not parse ({exc})"
            raise DirectoryUnavailable(url, setting, cause, fix, transient=False) from exc

    def _register(self, key_name: str) -> None:
        key = new_key(self.ca.account_key)
        jwk = key.jwk
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
        record = AccountRecord(self.ca.directory, regr.uri, key)
        try:
            self.keys.create(key_name, record.dumps())
        except KeyExists:
            # Another run registered at the same moment; use the account it saved.
            self.connect()
            return
        self._record = record
        log.info("ACME account registered, its key: %s", key.ref, extra={"account": regr.uri})

    @property
    def acme(self) -> client.ClientV2:
        if self._client is None:
            raise RuntimeError("AcmeClient.connect() was not called")
        return self._client

    @property
    def net(self) -> RetryAfterNetwork:
        assert self._net is not None
        return self._net

    @property
    def account_uri(self) -> str:
        """The account's URL at the CA: what a dns-persist-01 record names (a key rollover
        keeps it; a new account has another)."""
        assert self.net.account is not None, "AcmeClient.connect() was not called"
        return self.net.account.uri

    @property
    def caa_identities(self) -> tuple[str, ...]:
        """The CA's issuer domains its directory lists (`meta.caaIdentities`), in its order."""
        return tuple(self.acme.directory.meta.caa_identities or ())

    # --- orders ----------------------------------------------------------------------------

    @property
    def renewal_info_url(self) -> str | None:
        """The directory's ARI endpoint, when the CA offers one."""
        try:
            return self.acme.directory["renewalInfo"]
        except KeyError:
            return None

    @property
    def profiles(self) -> tuple[str, ...]:
        """The profiles the CA's directory lists (`meta.profiles`), sorted; empty when none."""
        return tuple(sorted(self.acme.directory.meta.profiles or ()))

    def renewal_window(self, cert_id: str, now: datetime) -> SuggestedWindow:
        """The CA's suggested renewal window for the certificate `cert_id` (ARI); a transient
        AcmeError ("ari") when it cannot be read. Only for a CA with a `renewal_info_url`."""
        url = self.renewal_info_url
        if url is None:
            raise RuntimeError("the CA offers no renewal information")
        # On the ACME session's own connections: no handshake of its own per certificate.
        return fetch_window(url, cert_id, session=self.net.session, now=now)

    def new_order(
        self,
        csr_pem: bytes,
        profile: str | None,
        replaces: str | None = None,
        on_placed: Callable[[str], None] | None = None,
    ) -> messages.OrderResource:
        """Places an order for the CSR's names. `replaces` (an ARI CertID) marks it as the
        renewal of that certificate; it is sent only to a CA that offers ARI. A `profile` the
        CA's directory does not list is refused here, before anything is sent. `on_placed` is
        told the order's URL as soon as the CA returns it, before anything else is asked.

        Each request is retried on its own: a bad nonce while fetching an authorization retries
        that fetch, never the newOrder POST; and a server error there is not retried at all
        (the CA may have stored the order: a retry would place a second).
        """
        if profile is not None and profile not in self.profiles:
            raise ProfileUnknown(profile, self.profiles, self.ca.directory)
        csr = x509.load_pem_x509_csr(csr_pem)
        names, _ = crypto_util.get_identifiers_from_x509(csr.subject, csr.extensions)
        identifiers = [messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=n) for n in names]
        if replaces is None or self.renewal_info_url is None:
            order: messages.NewOrder = messages.NewOrder(identifiers=identifiers, profile=profile)
        else:
            # The library's NewOrder cannot send `replaces`.
            order = _ReplacingNewOrder(identifiers=identifiers, profile=profile, replaces=replaces)
        response = self._call(
            "new order", self.acme._post, self.acme.directory["newOrder"], order, creates=True
        )
        url = response.headers.get("Location")
        if not url:
            raise AcmeError("malformed", "the CA created an order without saying where it is")
        if on_placed is not None:
            on_placed(url)
        body = messages.Order.from_json(response.json())
        authorizations = [
            self.acme._authzr_from_response(
                self._call("fetch authorization", self.acme._post_as_get, authz_url), uri=authz_url
            )
            for authz_url in body.authorizations
        ]
        return messages.OrderResource(
            body=body, uri=url, authorizations=authorizations, csr_pem=csr_pem
        )

    def find_order(self, names: tuple[str, ...]) -> str | None:
        """The URL of an order of this account for exactly `names` that can still be finished
        (pending or ready), from the account's order list (RFC 8555 §7.1.2.1); None when there
        is none or the CA keeps no list (Let's Encrypt does not)."""
        account = self.fetch_account()
        orders_url = account.get("orders")
        if not orders_url:
            return None
        listing = self._call("list orders", self.acme._post_as_get, orders_url).json()
        for url in reversed(listing.get("orders") or []):  # the newest last
            body = messages.Order.from_json(
                self._call("fetch order", self.acme._post_as_get, url).json()
            )
            same = {i.value for i in body.identifiers} == set(names)
            if same and body.status in (messages.STATUS_PENDING, messages.STATUS_READY):
                return url
        return None

    def resume_order(
        self, order_url: str, csr_pem: bytes, *, finalized_ok: bool = False
    ) -> messages.OrderResource | None:
        """The order at `order_url` with its authorizations, when it can still be finished with
        a new CSR for the same names (pending or ready) — or, with `finalized_ok` (the caller
        holds the key it was finalized with), also when it is processing or issued; None when it
        is gone or invalid, or issued for a key nobody holds."""
        try:
            response = self._call("fetch order", self.acme._post_as_get, order_url)
        except AcmeError as exc:
            if exc.transient or exc.problem == "clientError":
                # Not the CA saying the order is gone: a throttle or a proxy's bare 4xx. A new
                # order now could be a second one for a certificate the CA already issued.
                raise
            return None  # the CA's problem document: unknown (expired, deleted), place a new one
        body = messages.Order.from_json(response.json())
        usable = [messages.STATUS_PENDING, messages.STATUS_READY]
        if finalized_ok:
            usable += [messages.STATUS_PROCESSING, messages.STATUS_VALID]
        if body.status not in usable:
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

    def post(self, what: str, url: str, message: jose.JSONDeSerializable) -> requests.Response:
        """A request the library has no call for: `message` POSTed to `url`, signed with the
        account's key id, retried and translated as every call here."""
        return self._call(what, self.acme._post, url, message)

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
                    (problem_name(error) if error else None) or "orderInvalid",
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

    def _call(self, what: str, fn: Callable[..., T], *args: Any, creates: bool = False) -> T:
        """Calls the library, retrying bad nonces and transient server errors a bounded number
        of times, and translating every failure into an AcmeError.

        Server errors get `attempts` tries with backoff, except for a request that `creates`
        something (newOrder): the CA may have created it and lost only its answer, so a retry
        could create a second; the caller decides. A bad nonce needs only a fresh nonce, no
        pause (the CA refuses it before doing anything), and CAs reject good nonces at random
        (Pebble 5% by default), so it gets its own, larger budget: with the library's one retry
        inside, each try fails with p², and twelve tries make a lost call vanishingly rare even
        at p = 0.5.
        """
        delay = self.retry_interval
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
                    if creates or server_errors >= self.attempts:
                        raise error from exc
                    self.sleep(delay)
                    delay = min(delay * 2, self.max_interval)
                else:
                    raise error from exc
                log.debug("retrying %s after %s", what, error.problem)

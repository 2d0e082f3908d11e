"""ACME account key rollover (RFC 8555 §7.3.5), which the `acme` library lacks: the account keeps
its URL, so every dns-persist-01 record naming it stays valid, while the key that signs for it
moves, e.g. from the key store into AWS KMS and back.

    outer JWS   signed by the old key: kid = the account URL, nonce, url = the CA's keyChange
    its payload the inner JWS, signed by the new key: jwk = the new public key, the same url,
                no nonce, no kid; payload {"account": the account URL, "oldKey": the old JWK}

Each step can be killed and run again, and no key the CA may hold is ever lost:

    1. the record gains "next": the new key (a new file key is stored before the CA sees it)
    2. keyChange at the CA
    3. the CA is asked for the account with the new key (`settle`): if it answers, the record
       holds the new key only; otherwise the old key stays, and the rollover failed

Step 3 also settles a keyChange whose answer was lost, one that a retry made look refused, and
one a CA answered 200 without switching (Pebble does, for a key another account holds). A
connect that finds "next" (a run killed before step 3) settles it the same way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import josepy as jose
from acme import jws

from cloud.acme.account_key import AccountKeyRef, AccountRecord, new_key
from cloud.config import CaConfig
from cloud.errors import AccountKeyError, AcmeError
from cloud.keys.store import KeyStore

if TYPE_CHECKING:
    from cloud.acme.client import AcmeClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rollover:
    """One account moved: its URL (unchanged) and the keys before and after."""

    directory: str
    uri: str
    old: AccountKeyRef
    new: AccountKeyRef


def key_change_request(account_uri: str, url: str, old: jose.JWK, new: jose.JWK) -> jose.JWS:
    """The inner JWS: the new key vouching that it takes over `account_uri` from `old`."""
    payload = {"account": account_uri, "oldKey": old.public_key().to_json()}
    return jws.JWS.sign(json.dumps(payload).encode(), key=new, alg=jose.ES256, nonce=None, url=url)


def roll_over(acme: AcmeClient, to: AccountKeyRef) -> Rollover:
    """Moves the connected account of `acme` to a new key: a fresh key kept in the key store for
    FILE, the named KMS key otherwise. The account's URL stays. AccountKeyError when the account
    already signs with that KMS key; AcmeError when the CA refuses (its record then stays)."""
    record = acme.record
    if to.kms_arn is not None and record.key.ref == to:
        raise AccountKeyError(str(to), f"the account {record.uri} already signs with this key")
    try:
        url = acme.acme.directory["keyChange"]
    except KeyError:
        raise AcmeError("keyChangeUnsupported", "the CA's directory offers no keyChange") from None
    new = new_key(to)
    # Signed before anything is kept: a KMS key that cannot sign stops the rollover here.
    request = key_change_request(record.uri, url, record.key.jwk, new.jwk)
    pending = replace(record, next=new)
    acme.save(pending)  # 1. the new key is kept first; the old one still signs
    try:
        acme.post("key change", url, request)  # 2.
    except AcmeError as exc:
        error = exc
    else:
        error = AcmeError(
            "keyChangeNotApplied",
            f"the CA answered the key change, but the account {record.uri} still takes only its "
            "old key (does another account hold the new one?)",
        )
    if settle(acme, pending).key is not new:  # 3.
        raise error
    log.info(
        "ACME account key rolled over from %s to %s",
        record.key.ref,
        to,
        extra={"account": record.uri},
    )
    return Rollover(record.directory, record.uri, record.key.ref, to)


def settle(acme: AcmeClient, pending: AccountRecord) -> AccountRecord:
    """Finishes a rollover left under way: the record the CA agrees with, saved, and `acme`
    signing with its key. Transient failures leave the record as it is."""
    assert pending.next is not None
    acme.sign_with(pending.next)
    try:
        acme.fetch_account()
    except (AcmeError, AccountKeyError) as exc:
        if exc.transient:
            acme.sign_with(pending.key)
            raise
        settled = replace(pending, next=None)  # the CA never took the new key (or it can't sign)
    else:
        settled = AccountRecord(pending.directory, pending.uri, pending.next)
    acme.save(settled)
    log.info(
        "ACME account key rollover settled: %s", settled.key.ref, extra={"account": settled.uri}
    )
    return settled


def roll_over_account(
    ca: CaConfig, keys: KeyStore, to: AccountKeyRef, *, staging: bool = False
) -> Rollover | None:
    """Moves the account at `ca.directory` (with `staging`, the dry runs' account at
    `ca.staging_directory`) to `to`; an account that already signs with that KMS key is left as
    it is (a Rollover from `to` to `to`), so a command cut short can be run again. None when
    there is no dry runs' account; AccountKeyError when there is no account yet (the first run
    registers it with `ca.account_key`)."""
    from cloud.acme.client import AcmeClient

    directory = ca.staging_directory if staging else ca.directory
    if directory is None:
        return None
    acme = AcmeClient(replace(ca, directory=directory), keys, staging=staging)
    if keys.load(acme.record_name) is None:
        if staging:
            return None
        raise AccountKeyError(
            str(to),
            f'no ACME account at {directory} yet: set ca.account_key = "{to}", and the first '
            "run registers the account with it",
        )
    acme.connect(any_key=True)
    if to.kms_arn is not None and acme.record.key.ref == to:
        return Rollover(directory, acme.account_uri, to, to)
    return roll_over(acme, to)

"""The issuer's signed statement beside each escrow copy: what makes a copy one the issuer wrote.

    state/escrow/<site>/<version>.json    {"format": "certdrop-escrow-statement-v1",
                                           "signed": {...}, "signature": "<base64url>"}

Sealing to escrow needs only the escrow key's public half (a line `init` prints), and the site
state that names a copy is unsigned: a copy that opens with the escrow key says nothing of who
wrote it. So before anything is delivered from escrow (a recorded issuance a dead run left, a
redelivery, a new agent) the copy's statement must verify with a signing key the issuer holds
(`Signer.trusted`, as for registry records: never a key the store's rotation chain names) and
name the site, version and certificate the record names and the plaintext the copy holds
(docs/bundle-format.md §12). The issuer writes one for each copy it seals, after reserving the
version, so a version it signed is one it reserved: the unsigned reservation object adds nothing.

Why these choices:
- It binds the SHA-256 of the plaintext (its canonical encoding), not of the sealed bytes:
  `issuer rotate --escrow` re-seals a copy without changing what it holds, so the statement
  stays true, and a rotation killed between two writes cannot leave a copy refused. Only someone
  holding that plaintext (its key included) can make a copy with that hash, and such a copy is
  the certificate the issuer issued.
- It is an object of its own: the site state record is unsigned and rewritten by every run, and
  the escrow copy is a sealed object whose format the golden vectors pin. It is written before
  the copy and deleted after it.
- It is signed by the key that signs indexes. `issuer rotate` signs every statement again while
  it holds both keys (`resign_all`), as it does registry records; after `--compromised` the old
  key is gone, so the copies it vouched for are refused until their site is issued again.

Residual (docs/threat-model.md): a store writer who kept an older copy with its statement can put
both back and name them in the site state; the issuer then delivers that older certificate,
genuine and unexpired, to agents that hold nothing newer (the others refuse it by version).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import asdict, dataclass, field

from cryptography.exceptions import InvalidSignature

from cloud.errors import EscrowForged, EscrowUnsigned, ObjectTooLarge, PreconditionFailed
from cloud.keys.rotation import Signer
from cloud.store import Store, StoredObject
from nas_agent import store_layout
from nas_agent._encoding import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    load_json_object,
    published_json,
)
from nas_agent.bundle import BundlePlaintext, LeafPlaintext
from nas_agent.bundle.leaf import LEAF_FORMAT, encode_leaf_plaintext
from nas_agent.bundle.plaintext import PLAINTEXT_FORMAT, encode_plaintext, is_version

log = logging.getLogger(__name__)

FORMAT = "certdrop-escrow-statement-v1"
CONTEXT = b"certdrop escrow statement v1\n"
_MAX_BYTES = 4096  # a statement is about 500 bytes
_HEX64 = re.compile("[0-9a-f]{64}")
_VERSION_NAME = re.compile("[1-9][0-9]*")  # as escrow_statement names it
_SIGNED_FIELDS = frozenset(
    {"site", "version", "kind", "agent", "cert_sha256", "plaintext_sha256", "issuer_key_id"}
)


@dataclass(frozen=True)
class EscrowStatement:
    """The copy of `site`'s `version` holds a plaintext of `kind` (for `agent`; "" for a key
    bundle) whose leaf is `cert_sha256` and whose canonical encoding hashes to
    `plaintext_sha256`."""

    site: str
    version: int
    kind: str
    agent: str
    cert_sha256: str
    plaintext_sha256: str

    @classmethod
    def of(cls, plaintext: BundlePlaintext | LeafPlaintext) -> EscrowStatement:
        if isinstance(plaintext, LeafPlaintext):
            kind, agent, data = LEAF_FORMAT, plaintext.agent_id, encode_leaf_plaintext(plaintext)
        else:
            kind, agent, data = PLAINTEXT_FORMAT, "", encode_plaintext(plaintext)
        return cls(
            plaintext.site,
            plaintext.version,
            kind,
            agent,
            plaintext.leaf_sha256(),
            hashlib.sha256(data).hexdigest(),
        )

    def signed_bytes(self, issuer_key_id: str) -> bytes:
        return CONTEXT + canonical_json({**asdict(self), "issuer_key_id": issuer_key_id})


@dataclass(frozen=True)
class _Signed:
    statement: EscrowStatement
    issuer_key_id: str
    signature: bytes = field(repr=False)


class EscrowStatements:
    """Writes statements signed with the signer's key; accepts those a key it holds signed."""

    def __init__(self, store: Store, signer: Signer):
        self.store = store
        self.signer = signer

    def write(self, plaintext: BundlePlaintext | LeafPlaintext) -> None:
        self._put(EscrowStatement.of(plaintext))

    def delete(self, site: str, version: int) -> None:
        self.store.delete(store_layout.escrow_statement(site, version))

    def vouched(self, site: str, version: int, cert_sha256: str) -> EscrowStatement:
        """The statement of `site`'s `version`, signed by a key the issuer holds and naming
        `cert_sha256` (the record's certificate); EscrowUnsigned or EscrowForged otherwise."""
        key = store_layout.escrow_statement(site, version)
        try:
            found = self.store.get(key, max_bytes=_MAX_BYTES)
        except ObjectTooLarge as exc:
            raise EscrowForged(site, f"{key} is larger than a statement can be") from exc
        if not isinstance(found, StoredObject):
            raise EscrowUnsigned(site, version)
        signed = self._verified(site, found.body)
        statement = signed.statement
        if (statement.site, statement.version) != (site, version):
            raise EscrowForged(site, f"{key} vouches for {statement.site} v{statement.version}")
        if statement.cert_sha256 != cert_sha256:
            raise EscrowForged(site, f"{key} names another certificate than the site state")
        return statement

    def top_version(self, site: str) -> int:
        """The highest version of `site` a statement signed by a key the issuer holds vouches
        for, 0 when none: the floor of the next version (cloud.publish.versions), which unsigned
        store content cannot raise. Newest first, so usually one read: a statement that does not
        verify is passed over (logged)."""
        prefix = store_layout.escrow_statements(site)
        named: dict[int, str] = {}
        for info in self.store.list(prefix):
            number = info.key[len(prefix) :].removesuffix(".json")
            if _VERSION_NAME.fullmatch(number):
                named[int(number)] = info.key
        for version in sorted(named, reverse=True):
            try:
                found = self.store.get(named[version], max_bytes=_MAX_BYTES)
                if not isinstance(found, StoredObject):
                    continue  # deleted since listed: a statement retired meanwhile
                statement = self._verified(site, found.body).statement
            except (EscrowForged, ObjectTooLarge) as exc:
                log.warning(
                    "%s vouches for no version: %s", named[version], exc, extra={"site": site}
                )
                continue
            if (statement.site, statement.version) == (site, version):
                return version
            log.warning(
                "%s is a copy of the statement of %s v%d",
                named[version],
                statement.site,
                statement.version,
                extra={"site": site},
            )
        return 0

    def resign_all(self) -> tuple[int, int]:
        """Signs again with the key in use every statement another key the issuer holds signed
        (a rotation, while it holds both); returns (how many, how many it cannot vouch for:
        left as they are, their copies stay refused)."""
        signed_again = untrusted = 0
        for info in list(self.store.list(store_layout.ESCROW_STATEMENTS_PREFIX)):
            site = info.key[len(store_layout.ESCROW_STATEMENTS_PREFIX) :].partition("/")[0]
            try:
                found = self.store.get(info.key, max_bytes=_MAX_BYTES)
                if not isinstance(found, StoredObject):
                    continue
                signed = self._verified(site, found.body)
            except (EscrowForged, ObjectTooLarge) as exc:
                log.warning("%s not signed again: %s", info.key, exc, extra={"site": site})
                untrusted += 1
                continue
            statement = signed.statement
            if info.key != store_layout.escrow_statement(statement.site, statement.version):
                untrusted += 1  # a copy of another's statement: vouches for nothing here
            elif signed.issuer_key_id != self.signer.key_id:
                try:
                    self._put(statement, if_match=found.etag)
                    signed_again += 1
                except PreconditionFailed:
                    continue  # rewritten meanwhile, by a publish with the key then in use
        return signed_again, untrusted

    def _put(self, statement: EscrowStatement, *, if_match: str | None = None) -> None:
        kid = self.signer.key_id
        signed = {**asdict(statement), "issuer_key_id": kid}
        signature = self.signer.key.sign(statement.signed_bytes(kid))
        document = {"format": FORMAT, "signed": signed, "signature": b64url_encode(signature)}
        key = store_layout.escrow_statement(statement.site, statement.version)
        self.store.put(key, published_json(document), if_match=if_match)

    def _verified(self, site: str, body: bytes) -> _Signed:
        try:
            signed = _parse(body)
        except ValueError as exc:
            raise EscrowForged(site, f"its statement is malformed ({exc})") from exc
        public = self.signer.trusted.get(signed.issuer_key_id)
        if public is None:
            raise EscrowForged(
                site, f"its statement is signed by key {signed.issuer_key_id}, not one it holds"
            )
        try:
            public.verify(signed.signature, signed.statement.signed_bytes(signed.issuer_key_id))
        except InvalidSignature:
            raise EscrowForged(site, "its statement's signature does not match it") from None
        return signed


def _parse(body: bytes) -> _Signed:
    """The statement as written; ValueError for anything else."""
    document = load_json_object(body, max_size=_MAX_BYTES)
    if set(document) != {"format", "signed", "signature"} or document["format"] != FORMAT:
        raise ValueError(f'not a {FORMAT}: exactly "format", "signed" and "signature"')
    signed = document["signed"]
    if not isinstance(signed, dict) or set(signed) != _SIGNED_FIELDS:
        raise ValueError(f"signed holds exactly {sorted(_SIGNED_FIELDS)}")
    texts = [signed[name] for name in _SIGNED_FIELDS - {"version"}]
    if not all(isinstance(text, str) for text in texts) or not is_version(signed["version"]):
        raise ValueError("a field is not of its type")
    if not all(_HEX64.fullmatch(signed[name]) for name in ("cert_sha256", "plaintext_sha256")):
        raise ValueError("a hash is not 64 lowercase hex digits")
    statement = EscrowStatement(
        site=signed["site"],
        version=signed["version"],
        kind=signed["kind"],
        agent=signed["agent"],
        cert_sha256=signed["cert_sha256"],
        plaintext_sha256=signed["plaintext_sha256"],
    )
    return _Signed(statement, signed["issuer_key_id"], b64url_decode(document["signature"]))
